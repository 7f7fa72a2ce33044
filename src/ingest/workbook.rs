//! Workbooks are read in a child process of their own, under limits of memory and processor
//! time. A workbook is a compressed archive (XLSX) or a compound file (XLS) that its parser
//! expands in memory: two cells at opposite corners of a sheet make it lay out billions of
//! empty ones, a few kilobytes of archive can inflate to gigabytes of shared strings. An
//! allocation that fails aborts a process, whatever handles errors around it; in a child, it
//! aborts only the child, and the upload is told its file could not be read.
//!
//! The child is this program (`read-workbook`, not listed in the help). It sets its own
//! limits before it opens the file, then writes the sheets on its standard output, one JSON
//! line at a time: first the names of the sheets in reading order, then for each sheet its
//! header and its rows, and last a line saying it is done. The parent reads those lines as
//! the ingest asks for rows; output that ends before that last line means the child stopped.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

use calamine::Reader;
use serde::{Deserialize, Serialize};

use super::read::{Cell, RangeRows, ReadError, Row, Sheet, SheetSource};

/// The longest line the parent reads from the child: one row, as JSON.
const MAX_LINE_BYTES: u64 = 16 << 20;

/// How workbooks are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderLimits {
    /// Address space of the reading process, in MiB.
    pub memory_mb: u32,
    /// Processor time of the reading process, in seconds.
    pub cpu_seconds: u32,
}

impl Default for ReaderLimits {
    fn default() -> Self {
        Self {
            memory_mb: 2048,
            cpu_seconds: 300,
        }
    }
}

static PROGRAM: OnceLock<PathBuf> = OnceLock::new();

/// Makes `program` the reader of workbooks, for a process that is not itself this server's
/// executable (a test harness); by default the running executable reads them.
pub fn set_reader_program(program: PathBuf) {
    let _ = PROGRAM.set(program);
}

fn program() -> Result<PathBuf, ReadError> {
    match PROGRAM.get() {
        Some(program) => Ok(program.clone()),
        None => std::env::current_exe().map_err(|error| ReadError::Reader(error.to_string())),
    }
}

/// A cell on the wire.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum WireCell {
    Text(String),
    Number(f64),
}

fn to_wire(cells: &[Cell]) -> Vec<Option<WireCell>> {
    // Blank cells at the end (a used range wider than the data) make no column.
    let width = cells
        .iter()
        .rposition(|cell| !cell.is_blank())
        .map_or(0, |last| last + 1);
    cells
        .iter()
        .take(width.min(super::read::MAX_SHEET_COLUMNS + 1))
        .map(|cell| match cell {
            Cell::Empty => None,
            Cell::Text(text) => Some(WireCell::Text(super::read::storable(text))),
            Cell::Number(number) => Some(WireCell::Number(*number)),
        })
        .collect()
}

fn from_wire(cells: Vec<Option<WireCell>>) -> Vec<Cell> {
    cells
        .into_iter()
        .take(super::read::MAX_SHEET_COLUMNS + 1)
        .map(|cell| match cell {
            None => Cell::Empty,
            Some(WireCell::Text(text)) => Cell::Text(super::read::storable(&text)),
            Some(WireCell::Number(number)) => Cell::Number(number),
        })
        .collect()
}

/// One line of the child's output.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Line {
    /// The workbook's sheets, in reading order (the first line).
    Sheets(Vec<String>),
    /// The next sheet begins, with its first row.
    Sheet(Vec<Option<WireCell>>),
    /// The next sheet cannot be read.
    Unreadable(String),
    /// A row of the current sheet: its number and cells.
    Row(u64, Vec<Option<WireCell>>),
    /// The workbook cannot be read at all (in place of the first line).
    Error(String),
    /// Everything was written.
    Done,
}

/// The child's side: applies `limits` to this process, then writes the workbook at `path`
/// on standard output. Exits with an error only when it cannot write.
pub fn serve(path: &Path, limits: ReaderLimits) -> anyhow::Result<()> {
    apply_limits(limits)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    write_workbook(path, &mut out)?;
    out.flush()?;
    Ok(())
}

fn apply_limits(limits: ReaderLimits) -> anyhow::Result<()> {
    use nix::sys::resource::{Resource, setrlimit};
    let memory = u64::from(limits.memory_mb) << 20;
    let cpu = u64::from(limits.cpu_seconds);
    // A reader stopped at its limit aborts; it leaves no core file behind.
    setrlimit(Resource::RLIMIT_CORE, 0, 0)?;
    setrlimit(Resource::RLIMIT_AS, memory, memory)?;
    setrlimit(Resource::RLIMIT_CPU, cpu, cpu)?;
    Ok(())
}

fn write_line(out: &mut impl Write, line: &Line) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, line)?;
    out.write_all(b"\n")
}

fn write_workbook(path: &Path, out: &mut impl Write) -> std::io::Result<()> {
    let workbook = std::fs::read(path)
        .map_err(|error| error.to_string())
        .and_then(|bytes| {
            calamine::open_workbook_auto_from_rs(std::io::Cursor::new(bytes))
                .map_err(|error| error.to_string())
        });
    let mut workbook = match workbook {
        Ok(workbook) => workbook,
        Err(message) => return write_line(out, &Line::Error(message)),
    };
    let mut names = workbook.sheet_names();
    names.sort();
    write_line(out, &Line::Sheets(names.clone()))?;
    for name in names {
        let range = match workbook.worksheet_range(&name) {
            Ok(range) => range,
            Err(error) => {
                write_line(out, &Line::Unreadable(error.to_string()))?;
                continue;
            }
        };
        let mut rows = RangeRows::new(range);
        let header = rows.next().map(|(_, cells)| cells).unwrap_or_default();
        write_line(out, &Line::Sheet(to_wire(&header)))?;
        for (number, cells) in rows {
            write_line(out, &Line::Row(number, to_wire(&cells)))?;
        }
    }
    write_line(out, &Line::Done)
}

/// The parent's side: starts the child on the workbook at `path` and lists its sheets.
pub fn open(path: &Path, limits: ReaderLimits) -> Result<Vec<Box<dyn SheetSource>>, ReadError> {
    open_with(&program()?, path, limits)
}

fn open_with(
    program: &Path,
    path: &Path,
    limits: ReaderLimits,
) -> Result<Vec<Box<dyn SheetSource>>, ReadError> {
    let mut child = Command::new(program)
        .arg("read-workbook")
        .arg("--memory-mb")
        .arg(limits.memory_mb.to_string())
        .arg("--cpu-seconds")
        .arg(limits.cpu_seconds.to_string())
        .arg(path)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|error| ReadError::Reader(error.to_string()))?;
    let Some(stdout) = child.stdout.take() else {
        return Err(ReadError::Workbook(
            "the workbook reader has no output".into(),
        ));
    };
    let mut stream = Stream {
        child,
        out: BufReader::new(stdout),
        limits,
        pending: None,
        sheets_begun: 0,
        ended: false,
        broken: None,
    };
    let names = match stream.next_line()? {
        Some(Line::Sheets(names)) => names
            .iter()
            .map(|name| super::read::storable(name))
            .collect::<Vec<_>>(),
        Some(Line::Error(message)) => return Err(ReadError::Workbook(message)),
        _ => return Err(stream.stopped()),
    };
    let stream = Arc::new(Mutex::new(stream));
    Ok(names
        .into_iter()
        .enumerate()
        .map(|(index, name)| {
            Box::new(WorkbookSheet {
                stream: stream.clone(),
                index,
                name,
            }) as Box<dyn SheetSource>
        })
        .collect())
}

/// The child's output as it is read.
struct Stream {
    child: Child,
    out: BufReader<ChildStdout>,
    limits: ReaderLimits,
    /// A line read ahead: the start of the next sheet, met while reading rows.
    pending: Option<Line>,
    /// Sheets whose first line has been read.
    sheets_begun: usize,
    /// The last line was read.
    ended: bool,
    /// The output could not be read on: every later read says so.
    broken: Option<String>,
}

impl Stream {
    /// The next line; none after the last. An output that cannot be read on (a line too long,
    /// not JSON, cut short) ends the reading for good: nothing after it could be placed.
    fn next_line(&mut self) -> Result<Option<Line>, ReadError> {
        if let Some(message) = &self.broken {
            return Err(ReadError::Workbook(message.clone()));
        }
        if let Some(line) = self.pending.take() {
            if matches!(line, Line::Sheet(_) | Line::Unreadable(_)) {
                self.sheets_begun += 1;
            }
            return Ok(Some(line));
        }
        if self.ended {
            return Ok(None);
        }
        match self.read_line() {
            Ok(line) => Ok(line),
            Err(error) => {
                let message = match error {
                    ReadError::Workbook(message) => message,
                    other => other.to_string(),
                };
                self.break_off(message.clone());
                Err(ReadError::Workbook(message))
            }
        }
    }

    fn read_line(&mut self) -> Result<Option<Line>, ReadError> {
        let mut buffer = Vec::new();
        let read = (&mut self.out)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut buffer)?;
        if read == 0 {
            return Err(self.stopped());
        }
        if buffer.last() != Some(&b'\n') {
            if buffer.len() as u64 > MAX_LINE_BYTES {
                return Err(ReadError::Workbook(format!(
                    "a row holds more than {} MiB of text",
                    MAX_LINE_BYTES >> 20
                )));
            }
            return Err(self.stopped());
        }
        let line: Line = serde_json::from_slice(&buffer).map_err(|error| {
            ReadError::Workbook(format!(
                "the workbook reader wrote an unknown line: {error}"
            ))
        })?;
        if matches!(line, Line::Done) {
            self.ended = true;
            return Ok(None);
        }
        if matches!(line, Line::Sheet(_) | Line::Unreadable(_)) {
            self.sheets_begun += 1;
        }
        Ok(Some(line))
    }

    /// Stops reading for good: the child is stopped, and every later read fails with
    /// `message`.
    fn break_off(&mut self, message: String) {
        if !self.ended {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.ended = true;
        }
        self.pending = None;
        self.broken = Some(message);
    }

    /// Why the output ended early: the child stopped, at one of its limits or otherwise.
    fn stopped(&mut self) -> ReadError {
        self.ended = true;
        let status = self.child.wait().ok();
        tracing::warn!(?status, "the workbook reader stopped before the end");
        ReadError::Workbook(format!(
            "it is too large or too complex to read within {} MiB of memory and {} s of \
             processor time",
            self.limits.memory_mb, self.limits.cpu_seconds
        ))
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if !self.ended {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

struct WorkbookSheet {
    stream: Arc<Mutex<Stream>>,
    index: usize,
    name: String,
}

fn lock(stream: &Mutex<Stream>) -> Result<std::sync::MutexGuard<'_, Stream>, ReadError> {
    stream
        .lock()
        .map_err(|_| ReadError::Workbook("a previous read failed".into()))
}

impl SheetSource for WorkbookSheet {
    fn name(&self) -> &str {
        &self.name
    }

    /// Sheets are read in order; the rows of sheets passed over are skipped.
    fn read(&self) -> Result<Sheet, ReadError> {
        let mut stream = lock(&self.stream)?;
        if stream.sheets_begun > self.index {
            return Err(ReadError::Workbook(format!(
                "the sheet {} was read out of order",
                self.name
            )));
        }
        let header = loop {
            let Some(line) = stream.next_line()? else {
                return Err(ReadError::Workbook(format!(
                    "the sheet {} is missing",
                    self.name
                )));
            };
            let begun = stream.sheets_begun;
            match line {
                Line::Sheet(header) if begun == self.index + 1 => break from_wire(header),
                Line::Unreadable(message) if begun == self.index + 1 => {
                    return Err(ReadError::Workbook(message));
                }
                Line::Error(message) => return Err(ReadError::Workbook(message)),
                _ => {}
            }
        };
        Ok(Sheet {
            name: self.name.clone(),
            header,
            rows: Box::new(WorkbookRows {
                stream: self.stream.clone(),
                done: false,
            }),
        })
    }
}

/// The rows of the sheet being read, up to the next sheet.
struct WorkbookRows {
    stream: Arc<Mutex<Stream>>,
    done: bool,
}

impl Iterator for WorkbookRows {
    type Item = Result<Row, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut stream = match lock(&self.stream) {
            Ok(stream) => stream,
            Err(error) => {
                self.done = true;
                return Some(Err(error));
            }
        };
        match stream.next_line() {
            Ok(Some(Line::Row(number, cells))) => Some(Ok((number, from_wire(cells)))),
            Ok(Some(next @ (Line::Sheet(_) | Line::Unreadable(_)))) => {
                // The next sheet's first line: left for its reader, counted once.
                stream.sheets_begun -= 1;
                stream.pending = Some(next);
                self.done = true;
                None
            }
            Ok(Some(Line::Error(message))) => {
                self.done = true;
                Some(Err(ReadError::Workbook(message)))
            }
            Ok(Some(Line::Sheets(_) | Line::Done) | None) => {
                self.done = true;
                None
            }
            Err(error) => {
                self.done = true;
                Some(Err(error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_that_cannot_start_is_the_servers_fault_not_the_files() {
        let limits = ReaderLimits {
            memory_mb: 64,
            cpu_seconds: 1,
        };
        let missing = Path::new("/nonexistent/justice-counts");
        let error = open_with(missing, Path::new("/dev/null"), limits)
            .err()
            .expect("no reader");
        assert!(matches!(error, ReadError::Reader(_)), "{error}");
    }
}
