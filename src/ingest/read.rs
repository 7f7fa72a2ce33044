//! Reading uploaded files: a CSV is one sheet named after the file; a workbook (XLSX or XLS)
//! is one sheet per worksheet, read by a child process under limits ([`super::workbook`]).
//! Sheets are read in alphabetical order of their names, and each sheet's rows one at a time,
//! so that a CSV of any length is read in bounded memory.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use calamine::{Data, Range};

/// The kinds of file an upload may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values in UTF-8.
    Csv,
    /// An Excel workbook (2007 and later).
    Xlsx,
    /// An Excel 97–2003 workbook.
    Xls,
}

impl Format {
    /// The format of a file by its extension (any case), if it is one the upload reads.
    pub fn of(file_name: &str) -> Option<Self> {
        let (_, extension) = file_name.rsplit_once('.')?;
        match extension.to_ascii_lowercase().as_str() {
            "csv" => Some(Self::Csv),
            "xlsx" => Some(Self::Xlsx),
            "xls" => Some(Self::Xls),
            _ => None,
        }
    }
}

/// One cell as read.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Nothing in it.
    Empty,
    /// Text (every CSV cell is text).
    Text(String),
    /// A number (Excel numbers and dates).
    Number(f64),
}

impl Cell {
    /// Whether the cell holds nothing but white space.
    pub fn is_blank(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::Text(text) => text.trim().is_empty(),
            Self::Number(_) => false,
        }
    }

    /// The cell as people wrote it, for messages.
    pub fn display(&self) -> String {
        match self {
            Self::Empty => String::new(),
            Self::Text(text) => text.clone(),
            Self::Number(number) => format_number(*number),
        }
    }
}

/// A number as a spreadsheet shows it: `2023`, `12.5`.
pub fn format_number(number: f64) -> String {
    if number.fract() == 0.0 && number.abs() < 1e15 {
        format!("{number:.0}")
    } else {
        number.to_string()
    }
}

/// Why a file could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Not CSV in UTF-8.
    #[error("the CSV file cannot be read: {0}")]
    Csv(#[from] csv::Error),
    /// Not a readable workbook.
    #[error("the workbook cannot be read: {0}")]
    Workbook(String),
    /// The disk failed.
    #[error("the file cannot be read: {0}")]
    Io(#[from] std::io::Error),
    /// The server could not start its workbook reader (not the file's fault).
    #[error("the workbook reader cannot be started: {0}")]
    Reader(String),
}

/// One row: its number in the sheet (the header is row 1) and its cells.
pub type Row = (u64, Vec<Cell>);

/// A sheet being read: its name, its header cells and its data rows.
pub struct Sheet {
    /// The sheet's name as written (for a CSV: the file's name without extension).
    pub name: String,
    /// The first row.
    pub header: Vec<Cell>,
    /// The data rows, in order.
    pub rows: Box<dyn Iterator<Item = Result<Row, ReadError>> + Send>,
}

/// The sheet name of a CSV file: its name without folders and extension, at most 31
/// characters (Excel's limit on sheet names).
pub fn csv_sheet_name(file_name: &str) -> String {
    let base = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
    let stem = base.rsplit_once('.').map_or(base, |(stem, _)| stem);
    stem.chars().take(31).collect()
}

/// Opens the file at `path`, uploaded as `file_name`, and lists its sheets in reading order.
/// Sheets are read lazily, one after the other; a workbook's by a reader held to `limits`.
pub fn open(
    path: &Path,
    file_name: &str,
    limits: super::workbook::ReaderLimits,
) -> Result<Vec<Box<dyn SheetSource>>, ReadError> {
    match Format::of(file_name) {
        Some(Format::Csv) => Ok(vec![Box::new(CsvSource {
            path: path.to_owned(),
            name: csv_sheet_name(file_name),
        })]),
        Some(Format::Xlsx | Format::Xls) => super::workbook::open(path, limits),
        None => Err(ReadError::Workbook(format!(
            "{file_name} is not a .csv, .xlsx or .xls file"
        ))),
    }
}

/// A sheet not yet read.
pub trait SheetSource: Send {
    /// The sheet's name.
    fn name(&self) -> &str;
    /// Starts reading it.
    fn read(&self) -> Result<Sheet, ReadError>;
}

struct CsvSource {
    path: std::path::PathBuf,
    name: String,
}

impl SheetSource for CsvSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn read(&self) -> Result<Sheet, ReadError> {
        let mut file = BufReader::new(File::open(&self.path)?);
        skip_bom(&mut file)?;
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(file);
        let mut records = reader.into_records();
        let header = match records.next() {
            Some(record) => cells_of(&record?),
            None => Vec::new(),
        };
        let rows = records.zip(2u64..).map(|(record, number)| {
            let record = record?;
            Ok((number, cells_of(&record)))
        });
        Ok(Sheet {
            name: self.name.clone(),
            header,
            rows: Box::new(rows),
        })
    }
}

/// Passes over a UTF-8 byte-order mark, which spreadsheet programs put before CSV text.
fn skip_bom(file: &mut BufReader<File>) -> std::io::Result<()> {
    use std::io::BufRead;
    if file.fill_buf()?.starts_with(&[0xEF, 0xBB, 0xBF]) {
        file.consume(3);
    }
    Ok(())
}

fn cells_of(record: &csv::StringRecord) -> Vec<Cell> {
    // Blank cells at the end (a spreadsheet program's trailing commas) make no column.
    let width = (0..record.len())
        .rev()
        .find(|&at| record.get(at).is_some_and(|text| !text.trim().is_empty()))
        .map_or(0, |last| last + 1);
    record
        .iter()
        .take(width.min(MAX_SHEET_COLUMNS + 1))
        .map(|text| {
            if text.is_empty() {
                Cell::Empty
            } else {
                Cell::Text(storable(text))
            }
        })
        .collect()
}

/// The most columns a sheet of an upload may have; a wider sheet is refused whole. Rows are
/// read to one column beyond, so that the refusal can tell.
pub const MAX_SHEET_COLUMNS: usize = 64;

/// The most characters of a cell's text kept; no valid cell comes near it, and a longer
/// one is kept cut, with an ellipsis, to be quoted in the messages about it.
pub const MAX_CELL_CHARS: usize = 1_000;

/// Text a file gave, as an upload keeps it: at most [`MAX_CELL_CHARS`] characters, and the
/// character U+0000, which no PostgreSQL `text` value may hold, as U+FFFD.
pub(super) fn storable(text: &str) -> String {
    let cut = text
        .char_indices()
        .nth(MAX_CELL_CHARS)
        .map_or(text, |(end, _)| &text[..end]);
    let mut kept = cut.replace('\0', "\u{FFFD}");
    if cut.len() < text.len() {
        kept.push('…');
    }
    kept
}

/// The rows of a worksheet's used range, numbered as the sheet numbers them.
pub(super) struct RangeRows {
    range: Range<Data>,
    next: usize,
    first_row: u64,
}

impl RangeRows {
    /// The rows of `range`.
    pub(super) fn new(range: Range<Data>) -> Self {
        let first_row = u64::from(range.start().map_or(0, |(row, _)| row));
        Self {
            range,
            next: 0,
            first_row,
        }
    }
}

impl Iterator for RangeRows {
    type Item = Row;

    fn next(&mut self) -> Option<Row> {
        if self.next >= self.range.height() {
            return None;
        }
        let cells = (0..self.range.width())
            .map(|column| {
                self.range
                    .get((self.next, column))
                    .map_or(Cell::Empty, cell_of)
            })
            .collect();
        let number = self.first_row + self.next as u64 + 1;
        self.next += 1;
        Some((number, cells))
    }
}

fn cell_of(data: &Data) -> Cell {
    match data {
        Data::Empty => Cell::Empty,
        Data::Int(number) => Cell::Number(*number as f64),
        Data::Float(number) => Cell::Number(*number),
        Data::String(text) | Data::DateTimeIso(text) | Data::DurationIso(text) => {
            Cell::Text(text.clone())
        }
        Data::Bool(value) => Cell::Text(value.to_string()),
        Data::DateTime(date) => Cell::Number(date.as_f64()),
        Data::Error(error) => Cell::Text(format!("#{error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_names_drop_folders_before_the_length_cut() {
        assert_eq!(csv_sheet_name("arrests.csv"), "arrests");
        assert_eq!(
            csv_sheet_name("LAW_ENFORCEMENT/calls_for_service_by_type.csv"),
            "calls_for_service_by_type"
        );
        assert_eq!(csv_sheet_name(&format!("{}.csv", "x".repeat(40))).len(), 31);
        assert_eq!(Format::of("Data.XLSX"), Some(Format::Xlsx));
        assert_eq!(Format::of("data.pdf"), None);
        assert_eq!(Format::of("data"), None);
    }

    #[test]
    fn a_csv_is_one_sheet_of_text_cells_numbered_from_two() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upload");
        std::fs::write(&path, "\u{feff}year,value\n2023,\"1,5\"\n2024,\n").unwrap();
        let sheets = open(&path, "arrests.csv", Default::default()).unwrap();
        assert_eq!(sheets.len(), 1);
        let sheet = sheets[0].read().unwrap();
        assert_eq!(sheet.name, "arrests");
        assert_eq!(sheet.header[0], Cell::Text("year".into()));
        let rows: Vec<Row> = sheet.rows.map(Result::unwrap).collect();
        assert_eq!(rows[0].0, 2);
        assert_eq!(rows[0].1[1], Cell::Text("1,5".into()));
        // A blank cell at the end makes no column.
        assert_eq!(rows[1].1, [Cell::Text("2024".into())]);
    }
}
