// Type-level check of the generated client (compiled with `tsc --noEmit`, never run).
// It imports every generated typed document and reads results through the generated
// types, so a schema or operation change that breaks the frontend's types fails here.
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import {
  DataEntryDocument,
  DataVisualisationDocument,
  HomeDocument,
  MetricConfigurationDocument,
  PublicDashboardDocument,
  RecordsDocument,
  StartUpDocument,
  TeamAndSettingsDocument,
  UploadsDocument,
  ReportSummaryFragmentDoc,
  type HomeQuery,
  type RecordsQuery,
  type RecordsQueryVariables,
  type ReportStatus,
  type TeamAndSettingsQuery,
} from './generated/graphql';
import { useFragment } from './generated/fragment-masking';
import type { DateTimeString, IsoDate, JsonValue } from './scalars';

/** Every operation document the frontend sends (one per file in ../../operations). */
export const allDocuments: ReadonlyArray<TypedDocumentNode<unknown, never>> = [
  DataEntryDocument,
  DataVisualisationDocument,
  HomeDocument,
  MetricConfigurationDocument,
  PublicDashboardDocument,
  RecordsDocument,
  StartUpDocument,
  TeamAndSettingsDocument,
  UploadsDocument,
];

// Variables are typed: agencyId is required, the rest optional.
export const recordsVariables: RecordsQueryVariables = { agencyId: 'agency-1', first: 20 };

/** Reads nested fields of the Records result: each report's period, status and editors. */
export function describeRecords(data: RecordsQuery): string[] {
  if (data.agency === null) return [];
  return data.agency.reports.edges.map(({ node }) => {
    const start: IsoDate = node.dateRangeStart;
    const status: ReportStatus = node.status;
    const published: DateTimeString | null = node.publishedAt;
    const editors = node.editors.map((e) => `${e.person.name} at ${e.lastEditedAt}`);
    return `${start} ${status} v${node.version} ${published ?? 'unpublished'} [${editors.join(', ')}]`;
  });
}

/** The next page's cursor, or null on the last page. */
export function nextCursor(data: RecordsQuery): string | null {
  const page = data.agency?.reports.pageInfo;
  return page?.hasNextPage ? page.endCursor : null;
}

/** Unmasks the ReportSummary fragment spread in the Home query. */
export function latestMonthlyStatus(data: HomeQuery): ReportStatus | null {
  const report = useFragment(ReportSummaryFragmentDoc, data.agency?.latestMonthlyReport);
  return report?.status ?? null;
}

/** `email` is optional in the type because of `@include(if: $withEmails)`. */
export function teamEmails(data: TeamAndSettingsQuery): string[] {
  return (data.agency?.team ?? []).flatMap((m) => (m.email === undefined ? [] : [m.email]));
}

// The JSON scalar's type accepts JSON values and nothing else.
export const jsonExample: JsonValue = { status: { old: 'DRAFT', new: 'PUBLISHED' }, members: [1, null, true] };
// @ts-expect-error: a function is not a JSON value.
export const notJson: JsonValue = () => 1;
