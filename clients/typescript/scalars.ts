// TypeScript types of the schema's custom scalars (see codegen.ts and README.md).

/** `Date`: a calendar date without time zone, `YYYY-MM-DD` (RFC 3339 full-date). */
export type IsoDate = string;

/** `DateTime`: an instant as an RFC 3339 date-time string, e.g. `2024-05-01T12:00:00Z`. */
export type DateTimeString = string;

/** `JSON`: any JSON value. */
export type JsonValue =
  | string
  | number
  | boolean
  | null
  | JsonValue[]
  | { [key: string]: JsonValue };

/**
 * `File`: a file sent as a part of a GraphQL multipart request (apollo-upload-client and
 * similar clients send a browser `File` or `Blob`; any object of this shape will do).
 */
export interface UploadFile {
  readonly size: number;
  readonly type: string;
  arrayBuffer(): Promise<ArrayBuffer>;
}
