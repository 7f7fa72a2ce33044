#!/usr/bin/env node
// Breaking-change check between a released schema and the current one.
//
//   node schema-diff.mjs <released.graphql> <current.graphql>
//
// Prints every change (criticality, change type, path, message). Exits
//   0  when there is no breaking change, or every breaking change is allowed by the
//      deprecation policy: removing a field or an enum value that the RELEASED schema
//      marks @deprecated with a reason;
//   1  when any other breaking change exists;
//   2  on bad usage or a schema that does not parse / build.
import { readFileSync } from 'node:fs';
import { buildSchema, isEnumType, isInterfaceType, isObjectType, Kind, print } from 'graphql';
import { diff, ChangeType, CriticalityLevel } from '@graphql-inspector/core';

function usage(message) {
  if (message) console.error(`schema-diff: ${message}`);
  console.error('usage: node schema-diff.mjs <released.graphql> <current.graphql>');
  process.exit(2);
}

function load(file) {
  let sdl;
  try {
    sdl = readFileSync(file, 'utf8');
  } catch (err) {
    usage(`cannot read ${file}: ${err.message}`);
  }
  try {
    return buildSchema(sdl);
  } catch (err) {
    console.error(`schema-diff: ${file} is not a valid schema:\n${err.message}`);
    process.exit(2);
  }
}

/**
 * The explicit `reason` of an element's `@deprecated` directive in the released SDL, or
 * null when it has none (not deprecated, or deprecated without a reason).
 */
function explicitDeprecationReason(element) {
  const directive = element?.astNode?.directives?.find((d) => d.name.value === 'deprecated');
  const reasonArg = directive?.arguments?.find((a) => a.name.value === 'reason');
  if (!reasonArg) return null;
  const value = reasonArg.value.kind === Kind.STRING ? reasonArg.value.value : print(reasonArg.value);
  return value.trim() === '' ? null : value;
}

/** The released element a removal change is about (field or enum value), or undefined. */
function removedElement(released, change) {
  if (change.type === ChangeType.FieldRemoved) {
    const type = released.getType(change.meta.typeName);
    if (isObjectType(type) || isInterfaceType(type)) return type.getFields()[change.meta.removedFieldName];
  }
  if (change.type === ChangeType.EnumValueRemoved) {
    const type = released.getType(change.meta.enumName);
    if (isEnumType(type)) return type.getValue(change.meta.removedEnumValueName);
  }
  return undefined;
}

/**
 * Whether the deprecation policy allows this breaking change: returns a note when it
 * does, an explanation (string starting with "not allowed") when a removal was of a
 * deprecated element without a reason, or null.
 */
function policyVerdict(released, change) {
  const element = removedElement(released, change);
  if (!element) return null;
  if (element.deprecationReason == null) return null;
  const reason = explicitDeprecationReason(element);
  if (reason === null) {
    return { allowed: false, note: 'deprecated in the released schema but without a reason: not allowed by the policy' };
  }
  return { allowed: true, note: `allowed: deprecated in the released schema (reason: ${JSON.stringify(reason)})` };
}

const [releasedFile, currentFile, ...rest] = process.argv.slice(2);
if (!releasedFile || !currentFile || rest.length > 0) usage();

const released = load(releasedFile);
const current = load(currentFile);
const changes = await diff(released, current);

const order = { [CriticalityLevel.Breaking]: 0, [CriticalityLevel.Dangerous]: 1, [CriticalityLevel.NonBreaking]: 2 };
changes.sort((a, b) => order[a.criticality.level] - order[b.criticality.level]);

let breaking = 0;
let allowed = 0;
let dangerous = 0;
let safe = 0;
for (const change of changes) {
  const level = change.criticality.level;
  // One change per line: multi-line descriptions in messages are folded.
  const message = change.message.replace(/\s*\n\s*/g, ' ');
  let line = `${level} ${change.type}${change.path ? ` ${change.path}` : ''}: ${message}`;
  if (level === CriticalityLevel.Breaking) {
    const verdict = policyVerdict(released, change);
    if (verdict?.allowed) {
      allowed += 1;
      line += ` [${verdict.note}]`;
    } else {
      breaking += 1;
      if (verdict) line += ` [${verdict.note}]`;
    }
  } else if (level === CriticalityLevel.Dangerous) {
    dangerous += 1;
    const reason = change.criticality.reason?.replace(/\s*\n\s*/g, ' ');
    if (reason && reason !== message) line += ` [${reason}]`;
  } else {
    safe += 1;
  }
  console.log(line);
}

console.log(
  `${changes.length} change(s) from ${releasedFile} to ${currentFile}: ` +
    `${breaking + allowed} breaking (${allowed} allowed by the deprecation policy), ` +
    `${dangerous} dangerous, ${safe} non-breaking`,
);
if (breaking > 0) {
  console.log(
    `FAIL: ${breaking} breaking change(s) not allowed. Deprecate the field or enum value ` +
      '(@deprecated with a reason) in a released schema before removing it; for any other ' +
      'breaking change, update schema.released.graphql deliberately.',
  );
  process.exit(1);
}
console.log('OK: no breaking change outside the deprecation policy');
