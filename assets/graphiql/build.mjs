// Bundles the GraphiQL page into vendor/, collects licence texts into LICENSES/
// and writes vendor/MANIFEST.json. Run through ./refresh.sh (after `npm ci`).
//
// Outputs (fixed names, embedded by the Rust server with include_bytes!):
//   vendor/graphiql.js         page bootstrap + GraphiQL + React + Monaco (IIFE)
//   vendor/graphiql.css        GraphiQL + Monaco styles, fonts inlined as data: URLs
//   vendor/editor.worker.js    Monaco's generic editor worker
//   vendor/json.worker.js      Monaco's JSON language worker (variables/headers)
//   vendor/graphql.worker.js   monaco-graphql's language worker
//   vendor/MANIFEST.json       sha256 of every file above and the bundled packages

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const vendorDir = path.join(here, 'vendor');
const licensesDir = path.join(here, 'LICENSES');
const nodeModules = path.join(here, 'node_modules');

// Browsers that support ES2022 (classes with private fields, top-level features
// Monaco 0.52 already relies on).
const target = ['es2022', 'chrome100', 'firefox100', 'safari16', 'edge100'];

// graphiql/style.css already contains Monaco's complete editor.main.css (with the
// codicon font inlined), so the per-component CSS files that Monaco's ESM modules
// import would only duplicate it. Replace them with nothing.
const dropMonacoCss = {
  name: 'drop-monaco-component-css',
  setup(build) {
    build.onResolve({ filter: /\.css$/ }, (args) => {
      if (args.importer.includes(`${path.sep}node_modules${path.sep}monaco-editor${path.sep}`)) {
        return { path: args.path, namespace: 'dropped-css' };
      }
      return undefined;
    });
    build.onLoad({ filter: /.*/, namespace: 'dropped-css' }, () => ({
      contents: '',
      loader: 'css',
    }));
  },
};

const common = {
  bundle: true,
  minify: true,
  target,
  platform: 'browser',
  legalComments: 'eof',
  logLevel: 'warning',
  metafile: true,
  charset: 'utf8',
  define: {
    'process.env.NODE_ENV': '"production"',
    'globalThis.process.env.NODE_ENV': '"production"',
  },
  // Anything a stylesheet references is inlined; nothing is left to fetch.
  loader: {
    '.ttf': 'dataurl',
    '.woff': 'dataurl',
    '.woff2': 'dataurl',
    '.svg': 'dataurl',
    '.png': 'dataurl',
  },
};

fs.rmSync(vendorDir, { recursive: true, force: true });
fs.mkdirSync(vendorDir, { recursive: true });

const page = await esbuild.build({
  ...common,
  entryPoints: { graphiql: path.join(here, 'src', 'main.jsx') },
  outdir: vendorDir,
  format: 'iife',
  jsx: 'automatic',
  plugins: [dropMonacoCss],
});

const workers = await esbuild.build({
  ...common,
  entryPoints: {
    'editor.worker': path.join(nodeModules, 'monaco-editor/esm/vs/editor/editor.worker.js'),
    'json.worker': path.join(nodeModules, 'monaco-editor/esm/vs/language/json/json.worker.js'),
    'graphql.worker': path.join(nodeModules, 'monaco-graphql/esm/graphql.worker.js'),
  },
  outdir: vendorDir,
  format: 'iife',
});

// ---------------------------------------------------------------------------
// Which packages ended up in the bundles.
// ---------------------------------------------------------------------------
function packageDirOf(inputPath) {
  const absolute = path.resolve(here, inputPath);
  const marker = `${path.sep}node_modules${path.sep}`;
  const index = absolute.lastIndexOf(marker);
  if (index === -1) return undefined;
  const rest = absolute.slice(index + marker.length).split(path.sep);
  const depth = rest[0].startsWith('@') ? 2 : 1;
  return absolute.slice(0, index + marker.length) + rest.slice(0, depth).join(path.sep);
}

const packages = new Map(); // directory -> { name, version, license, files: Set }
for (const result of [page, workers]) {
  for (const [output, meta] of Object.entries(result.metafile.outputs)) {
    for (const [input, info] of Object.entries(meta.inputs)) {
      if (info.bytesInOutput === 0) continue;
      const dir = packageDirOf(input);
      if (!dir) continue;
      let entry = packages.get(dir);
      if (!entry) {
        const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
        entry = { name: pkg.name, version: pkg.version, license: pkg.license, dir, outputs: new Set() };
        packages.set(dir, entry);
      }
      entry.outputs.add(path.basename(output));
    }
  }
}

// Fonts inlined into graphiql/style.css (via @graphiql/react/font/*.css). Their
// licences come from the matching @fontsource packages (devDependencies).
const fontPackages = ['@fontsource/roboto', '@fontsource/fira-code'];
for (const name of fontPackages) {
  const dir = path.join(nodeModules, name);
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  packages.set(dir, {
    name: pkg.name,
    version: pkg.version,
    license: pkg.license,
    dir,
    outputs: new Set(['graphiql.css']),
    note: `Licence of the ${pkg.name.replace('@fontsource/', '')} font embedded in graphiql.css by graphiql/style.css`,
  });
}

const byName = new Map();
for (const entry of packages.values()) {
  if (!byName.has(entry.name)) byName.set(entry.name, []);
  byName.get(entry.name).push(entry);
}

// ---------------------------------------------------------------------------
// Licence texts.
// ---------------------------------------------------------------------------
const LICENSE_FILE = /^(licen[cs]e|copying|unlicense)([-._][\w.-]*)?$/i;
const NOTICE_FILE = /^(notice|thirdpartynotices)(\.(md|txt))?$/i;

const MIT_TEMPLATE = (holder) => `MIT License

Copyright (c) ${holder}

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.`;

function readPackageJson(dir) {
  return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
}

// Repositories that moved: the old name still appears in some package.json files.
const REPOSITORY_ALIASES = { 'github.com/facebook/react': 'github.com/react/react' };

// "git+https://github.com/facebook/react.git" -> "github.com/react/react"
function repositoryKey(pkg) {
  const repo = typeof pkg.repository === 'string' ? pkg.repository : pkg.repository?.url;
  if (!repo) return undefined;
  const key = repo
    .replace(/^git\+/, '')
    .replace(/^[a-z]+:\/\//, '')
    .replace(/^git@([^:]+):/, '$1/')
    .replace(/\.git$/, '')
    .toLowerCase();
  return REPOSITORY_ALIASES[key] ?? key;
}

function authorName(pkg) {
  const author = pkg.author;
  if (!author) return undefined;
  if (typeof author === 'string') return author.replace(/\s*[<(].*$/, '').trim();
  return author.name;
}

function licenseFilesOf(dir) {
  const files = fs.readdirSync(dir).sort();
  return {
    licenses: files.filter((file) => LICENSE_FILE.test(file)),
    notices: files.filter((file) => NOTICE_FILE.test(file)),
  };
}

// Licence texts by repository, for packages of a monorepo that ship no file of
// their own (e.g. @graphiql/plugin-* share graphiql's LICENSE).
const licenceByRepository = new Map();
for (const entry of [...packages.values()].sort((a, b) => a.name.localeCompare(b.name))) {
  const key = repositoryKey(readPackageJson(entry.dir));
  const { licenses } = licenseFilesOf(entry.dir);
  if (key && licenses.length && !licenceByRepository.has(key)) {
    licenceByRepository.set(key, { from: `${entry.name}@${entry.version}`, dir: entry.dir, file: licenses[0] });
  }
}

fs.rmSync(licensesDir, { recursive: true, force: true });
fs.mkdirSync(licensesDir, { recursive: true });

const reconstructed = [];
for (const [name, entries] of [...byName.entries()].sort(([a], [b]) => a.localeCompare(b))) {
  const parts = [];
  for (const entry of entries.sort((a, b) => a.version.localeCompare(b.version))) {
    const pkg = readPackageJson(entry.dir);
    const { licenses, notices } = licenseFilesOf(entry.dir);
    parts.push(`${entry.name}@${entry.version} (${entry.license ?? 'licence not declared'})`);
    if (entry.note) parts.push(entry.note);
    parts.push('');
    if (licenses.length === 0) {
      const shared = licenceByRepository.get(repositoryKey(pkg) ?? '');
      if (shared) {
        parts.push(
          `The package ships no licence file; this is the licence of ${shared.from}, published from the same repository (${repositoryKey(pkg)}).`,
          '',
          `----- ${shared.from}: ${shared.file} -----`,
          fs.readFileSync(path.join(shared.dir, shared.file), 'utf8').trimEnd(),
          '',
        );
        reconstructed.push(`${entry.name}@${entry.version} (from ${shared.from})`);
      } else if (entry.license === 'MIT' && authorName(pkg)) {
        parts.push(
          `The package ships no licence file; its package.json declares "MIT" with author ${authorName(pkg)}. The standard MIT text follows.`,
          '',
          MIT_TEMPLATE(authorName(pkg)),
          '',
        );
        reconstructed.push(`${entry.name}@${entry.version} (MIT text, author from package.json)`);
      } else {
        throw new Error(`${entry.name}@${entry.version}: no licence file and no way to reconstruct one`);
      }
    }
    for (const file of [...licenses, ...notices]) {
      parts.push(`----- ${file} -----`, fs.readFileSync(path.join(entry.dir, file), 'utf8').trimEnd(), '');
    }
  }
  const target = path.join(licensesDir, `${name}.txt`);
  fs.mkdirSync(path.dirname(target), { recursive: true });
  fs.writeFileSync(target, `${parts.join('\n').trimEnd()}\n`);
}

// ---------------------------------------------------------------------------
// Manifest.
// ---------------------------------------------------------------------------
function sha256(file) {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

const files = fs
  .readdirSync(vendorDir)
  .filter((file) => file !== 'MANIFEST.json')
  .sort()
  .map((file) => {
    const full = path.join(vendorDir, file);
    return { path: file, bytes: fs.statSync(full).size, sha256: sha256(full) };
  });

const licenseFiles = [];
(function walk(dir) {
  for (const item of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, item.name);
    if (item.isDirectory()) walk(full);
    else licenseFiles.push(path.relative(here, full).split(path.sep).join('/'));
  }
})(licensesDir);
licenseFiles.sort();

const lock = JSON.parse(fs.readFileSync(path.join(here, 'package-lock.json'), 'utf8'));
const manifestPackages = [...packages.values()]
  .map((entry) => {
    const lockKey = path.relative(here, entry.dir).split(path.sep).join('/');
    return {
      name: entry.name,
      version: entry.version,
      license: entry.license ?? null,
      integrity: lock.packages?.[lockKey]?.integrity ?? null,
      in: [...entry.outputs].sort(),
      licenseFile: `LICENSES/${entry.name}.txt`,
    };
  })
  .sort((a, b) => a.name.localeCompare(b.name) || a.version.localeCompare(b.version));

const manifest = {
  description: 'Vendored GraphiQL front end for /graphiql; regenerate with assets/graphiql/refresh.sh',
  node: process.version,
  esbuild: esbuild.version,
  files,
  packages: manifestPackages,
  licenses: licenseFiles,
};
fs.writeFileSync(path.join(vendorDir, 'MANIFEST.json'), `${JSON.stringify(manifest, null, 2)}\n`);

// ---------------------------------------------------------------------------
// Summary.
// ---------------------------------------------------------------------------
for (const file of files) console.log(`${String(file.bytes).padStart(10)}  vendor/${file.path}`);
console.log(`${manifestPackages.length} bundled packages, licence texts in LICENSES/ (${licenseFiles.length} files)`);
if (reconstructed.length) console.log(`licence texts taken from elsewhere (no file in the package): ${reconstructed.join('; ')}`);
