#!/usr/bin/env node
// Trusted-documents manifest of the frontend's operations.
//
//   node manifest.mjs <out.json>
//
// Reads every ../operations/*.graphql file (at run time, in name order) and writes a JSON
// object mapping the SHA-256 (lowercase hex) of each file's exact content — the UTF-8
// bytes of the whole file as read, comments and trailing newline included — to that
// content. This is the server's manifest format: it hashes each document string with
// SHA-256 and looks it up there (see src/http/documents.rs). A client must therefore send
// the file text byte for byte, or only its hash in `extensions.persistedQuery.sha256Hash`.
//
// Before writing, every document is validated on its own against ../schema.graphql with
// graphql-js `validate` (it is sent on its own, so it must be valid on its own). It must
// hold at least one operation, every operation must be named, and names must be unique
// across files. Any error is printed with its file and location, nothing is written, and
// the exit code is 1 (2 for bad usage or an unreadable schema).
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSchema, GraphQLError, Kind, parse, validate } from 'graphql';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..');
const schemaFile = join(repo, 'schema.graphql');
const operationsDir = join(repo, 'operations');

const args = process.argv.slice(2);
if (args.length !== 1) {
  console.error('usage: node manifest.mjs <out.json>');
  process.exit(2);
}
const outFile = resolve(args[0]);

let schema;
try {
  schema = buildSchema(readFileSync(schemaFile, 'utf8'));
} catch (err) {
  console.error(`manifest: cannot build ${relative(process.cwd(), schemaFile)}: ${err.message}`);
  process.exit(2);
}

const files = readdirSync(operationsDir)
  .filter((name) => name.endsWith('.graphql'))
  .sort()
  .map((name) => join(operationsDir, name));
if (files.length === 0) {
  console.error(`manifest: no .graphql file in ${relative(process.cwd(), operationsDir)}`);
  process.exit(1);
}

const errors = [];
const report = (file, message, locations = []) => {
  const where = locations.length ? `:${locations[0].line}:${locations[0].column}` : '';
  errors.push(`${relative(process.cwd(), file)}${where}: ${message}`);
};

const manifest = {};
const operationFiles = new Map(); // operation name -> file
for (const file of files) {
  const bytes = readFileSync(file);
  const text = bytes.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(bytes)) {
    report(file, 'not valid UTF-8');
    continue;
  }

  let document;
  try {
    document = parse(text);
  } catch (err) {
    if (err instanceof GraphQLError) report(file, err.message, err.locations);
    else report(file, String(err));
    continue;
  }
  for (const err of validate(schema, document)) report(file, err.message, err.locations);

  const operations = document.definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION);
  if (operations.length === 0) report(file, 'no operation in the document');
  for (const op of operations) {
    if (!op.name) {
      report(file, `anonymous ${op.operation}: every operation must be named`, [op.loc.startToken]);
      continue;
    }
    const name = op.name.value;
    if (operationFiles.has(name)) {
      report(file, `operation "${name}" is also defined in ${relative(process.cwd(), operationFiles.get(name))}`, [op.name.loc.startToken]);
    } else {
      operationFiles.set(name, file);
    }
  }

  const hash = createHash('sha256').update(bytes).digest('hex');
  if (manifest[hash] !== undefined && manifest[hash] !== text) {
    report(file, `SHA-256 collision with another document (${hash})`);
  }
  manifest[hash] = text;
}

if (errors.length > 0) {
  for (const line of errors) console.error(line);
  console.error(`manifest: ${errors.length} error(s) in ${files.length} operation file(s); nothing written`);
  process.exit(1);
}

mkdirSync(dirname(outFile), { recursive: true });
writeFileSync(outFile, `${JSON.stringify(manifest, null, 2)}\n`);
console.log(
  `manifest: ${Object.keys(manifest).length} trusted document(s) from ${files.length} file(s), ` +
    `${operationFiles.size} operation(s) [${[...operationFiles.keys()].join(', ')}] -> ${relative(process.cwd(), outFile)}`,
);
