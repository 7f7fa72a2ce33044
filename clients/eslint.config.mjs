// ESLint flat config for the GraphQL schema and the frontend's operations.
//
// ESLint only lints files under its base path, so the scripts run it from the repository
// root:  cd .. && eslint -c clients/eslint.config.mjs schema.graphql   (see package.json).
// The schema and operations are read at run time from the repository (never copied);
// their paths are resolved from this file, so the working directory does not matter.
import { fileURLToPath } from 'node:url';
import graphqlPlugin from '@graphql-eslint/eslint-plugin';

const repo = fileURLToPath(new URL('..', import.meta.url));
const schema = `${repo}schema.graphql`;
const operations = `${repo}operations/*.graphql`;

// Directives defined by the GraphQL specification. async-graphql prints their definitions
// into the SDL but never prints descriptions of directive arguments (its
// MetaDirective::argument_sdl writes `name: Type = default` only), so `if` / `url` /
// `reason` can not be described from the Rust side: they are exempt from
// require-description. Everything else must be described.
const SPEC_DIRECTIVES = 'include|skip|deprecated|specifiedBy|oneOf';

const schemaRules = {
  // --- the validation rules that make sense on SDL ---
  ...graphqlPlugin.configs['flat/schema-recommended'].rules,

  // --- naming ---
  '@graphql-eslint/naming-convention': [
    'error',
    {
      types: 'PascalCase',
      FieldDefinition: 'camelCase',
      InputValueDefinition: 'camelCase',
      Argument: 'camelCase',
      DirectiveDefinition: 'camelCase',
      EnumValueDefinition: 'UPPER_CASE',
      InputObjectTypeDefinition: { style: 'PascalCase', requiredSuffixes: ['Input'] },
      'FieldDefinition[parent.name.value=Query]': {
        forbiddenPrefixes: ['query', 'get'],
        forbiddenSuffixes: ['Query'],
      },
      'FieldDefinition[parent.name.value=Mutation]': {
        forbiddenPrefixes: ['mutation'],
        forbiddenSuffixes: ['Mutation'],
      },
      'FieldDefinition[parent.name.value=Subscription]': {
        forbiddenPrefixes: ['subscription'],
        forbiddenSuffixes: ['Subscription'],
      },
      EnumTypeDefinition: { forbiddenPrefixes: ['Enum'], forbiddenSuffixes: ['Enum'] },
      ObjectTypeDefinition: { forbiddenPrefixes: ['Type'], forbiddenSuffixes: ['Type'] },
    },
  ],
  // Off: `Upload.uploadedAt` and `Upload.uploadedBy` say what happened, which `createdAt`
  // would not; the prefix is the verb here, not the type's name repeated.
  '@graphql-eslint/no-typename-prefix': 'off',

  // --- documentation ---
  // types (object, interface, enum, scalar, input, union), fields, arguments and input
  // fields (InputValueDefinition), enum values, directives, root fields.
  '@graphql-eslint/require-description': [
    'error',
    {
      types: true,
      rootField: true,
      FieldDefinition: true,
      InputValueDefinition: true,
      EnumValueDefinition: true,
      DirectiveDefinition: true,
      ignoredSelectors: [
        `[type=InputValueDefinition][parent.kind=DirectiveDefinition][parent.name.value=/^(${SPEC_DIRECTIVES})$/]`,
      ],
    },
  ],
  '@graphql-eslint/description-style': ['error', { style: 'block' }],
  '@graphql-eslint/no-hashtag-description': 'error',
  '@graphql-eslint/require-deprecation-reason': 'error',

  // --- shape ---
  '@graphql-eslint/no-unreachable-types': 'error',
  // Off: 39 object types are value objects without an identity of their own (breakdowns,
  // series points, edges, payloads, history records...); see README.md.
  '@graphql-eslint/strict-id-in-types': 'off',

  // --- Relay connections (agencies, reports, uploads) ---
  '@graphql-eslint/relay-connection-types': 'error',
  '@graphql-eslint/relay-page-info': 'error',
  '@graphql-eslint/relay-arguments': ['error', { includeBoth: true }],
  // Plain lists are allowed elsewhere, and there is no `Node` interface.
  '@graphql-eslint/relay-edge-types': [
    'error',
    { withEdgeSuffix: true, shouldImplementNode: false, listTypeCanWrapOnlyEdgeType: false },
  ],
};

// The executable-definition validation rules of graphql-js (and a few more) on the
// operations, checked against the schema.
const operationRules = {
  ...graphqlPlugin.configs['flat/operations-recommended'].rules,
};

export default [
  {
    files: ['schema.graphql'],
    languageOptions: {
      parser: graphqlPlugin.parser,
      parserOptions: { graphQLConfig: { schema } },
    },
    plugins: { '@graphql-eslint': graphqlPlugin },
    rules: schemaRules,
  },
  {
    files: ['operations/**/*.graphql'],
    languageOptions: {
      parser: graphqlPlugin.parser,
      parserOptions: { graphQLConfig: { schema, documents: operations } },
    },
    plugins: { '@graphql-eslint': graphqlPlugin },
    rules: operationRules,
  },
];
