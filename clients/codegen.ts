import type { CodegenConfig } from '@graphql-codegen/cli';

// Reads the committed SDL and the frontend's operations at run time: nothing is copied.
// The custom scalars map to the named types in ./typescript/scalars.ts (imported by the
// generated code as `../scalars`, relative to typescript/generated/graphql.ts).
// strictScalars: a custom scalar added to the schema without a mapping here fails generation.
const config: CodegenConfig = {
  overwrite: true,
  schema: '../schema.graphql',
  documents: ['../operations/*.graphql'],
  ignoreNoDocuments: false,
  emitLegacyCommonJSImports: false,
  generates: {
    'typescript/generated/': {
      preset: 'client',
      presetConfig: {
        // Fragments (ReportSummary in home.graphql) are masked: read them with useFragment.
        fragmentMasking: true,
      },
      config: {
        strictScalars: true,
        useTypeImports: true,
        enumsAsTypes: true,
        scalars: {
          Date: '../scalars#IsoDate',
          DateTime: '../scalars#DateTimeString',
          JSON: '../scalars#JsonValue',
          File: '../scalars#UploadFile',
        },
      },
    },
  },
};

export default config;
