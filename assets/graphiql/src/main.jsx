// Page bootstrap for the GraphiQL IDE served at /graphiql.
//
// Everything this page needs is bundled into /graphiql/assets/: the IDE itself
// (graphiql.js + graphiql.css, fonts inlined) and the three Monaco web workers.
// Nothing is fetched from any other origin.
//
// The server fills in <script type="application/json" id="graphiql-config">:
//   {
//     "endpoint": "/graphql",
//     "subscriptionEndpoint": "/graphql/ws",
//     "examples": [{ "name": "...", "query": "...", "variables": "{...}" }]
//   }

import { GraphiQL } from 'graphiql';
import 'graphiql/style.css';
import { getOperationAST } from 'graphql';
import { createClient } from 'graphql-ws';
import { createRoot } from 'react-dom/client';

const ASSET_BASE = '/graphiql/assets/';

// ---------------------------------------------------------------------------
// Monaco web workers.
//
// GraphiQL 5 runs its editors on Monaco, which asks `MonacoEnvironment.getWorker`
// for a worker per language label (see graphiql's `setup-workers/*` modules).
// The workers are bundled as separate classic scripts with fixed names.
// ---------------------------------------------------------------------------
const WORKER_FILES = {
  json: 'json.worker.js',
  graphql: 'graphql.worker.js',
  editorWorkerService: 'editor.worker.js',
};

globalThis.MonacoEnvironment = {
  getWorker(_workerId, label) {
    const file = WORKER_FILES[label] ?? WORKER_FILES.editorWorkerService;
    return new Worker(ASSET_BASE + file, { name: `monaco-${label}` });
  },
};

// ---------------------------------------------------------------------------
// Configuration.
// ---------------------------------------------------------------------------
function readConfig() {
  const element = document.getElementById('graphiql-config');
  let parsed = {};
  if (element && element.textContent) {
    try {
      parsed = JSON.parse(element.textContent);
    } catch (error) {
      // eslint-disable-next-line no-console
      console.error('graphiql-config is not valid JSON; using defaults', error);
    }
  }
  const examples = Array.isArray(parsed.examples) ? parsed.examples : [];
  return {
    endpoint: typeof parsed.endpoint === 'string' ? parsed.endpoint : '/graphql',
    subscriptionEndpoint:
      typeof parsed.subscriptionEndpoint === 'string'
        ? parsed.subscriptionEndpoint
        : '/graphql/ws',
    examples: examples.filter(
      (example) => example && typeof example.query === 'string',
    ),
  };
}

const config = readConfig();

// Turns "/graphql/ws" (or an absolute http(s) URL) into a ws:// or wss:// URL
// relative to the page's location.
function toWebSocketUrl(endpoint) {
  const url = new URL(endpoint, window.location.href);
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  return url.href;
}

const httpUrl = new URL(config.endpoint, window.location.href).href;
const wsUrl = toWebSocketUrl(config.subscriptionEndpoint);

// ---------------------------------------------------------------------------
// Fetcher.
// ---------------------------------------------------------------------------

// Headers from the headers editor are arbitrary JSON; only string-ish values
// can be sent as HTTP headers, and empty ones are dropped.
function cleanHeaders(headers) {
  const result = {};
  if (!headers || typeof headers !== 'object') return result;
  for (const [name, value] of Object.entries(headers)) {
    if (value === null || value === undefined) continue;
    const text = String(value).trim();
    if (text !== '') result[name] = text;
  }
  return result;
}

function authorizationOf(headers) {
  for (const [name, value] of Object.entries(headers)) {
    if (name.toLowerCase() === 'authorization') return value;
  }
  return undefined;
}

async function httpFetch(params, headers) {
  const response = await fetch(httpUrl, {
    method: 'POST',
    credentials: 'same-origin',
    headers: {
      Accept: 'application/graphql-response+json, application/json;q=0.9',
      ...headers,
      'Content-Type': 'application/json',
    },
    body: JSON.stringify(params),
  });
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    // Not a GraphQL response (e.g. a proxy error page): show what came back.
    return {
      errors: [
        {
          message: `HTTP ${response.status} ${response.statusText}: ${text.slice(0, 2000)}`,
        },
      ],
    };
  }
}

// One graphql-ws client per Authorization value: the token travels in the
// connection_init payload, so a changed token needs a new connection. The
// client is lazy, so an idle one holds no socket.
let wsClientEntry = null;

function wsClientFor(authorization) {
  if (wsClientEntry && wsClientEntry.authorization === authorization) {
    return wsClientEntry.client;
  }
  if (wsClientEntry) wsClientEntry.client.dispose();
  const client = createClient({
    url: wsUrl,
    lazy: true,
    retryAttempts: 0,
    connectionParams: () =>
      authorization === undefined ? {} : { Authorization: authorization },
  });
  wsClientEntry = { authorization, client };
  return client;
}

function subscribeOverWebSocket(params, headers) {
  const client = wsClientFor(authorizationOf(headers));
  // An Observable, which GraphiQL subscribes to and stops on demand.
  return {
    subscribe(sinkOrNext, maybeError, maybeComplete) {
      const sink =
        typeof sinkOrNext === 'function'
          ? { next: sinkOrNext, error: maybeError, complete: maybeComplete }
          : sinkOrNext;
      const dispose = client.subscribe(params, {
        next: (value) => sink.next?.(value),
        complete: () => sink.complete?.(),
        error: (error) => {
          if (typeof CloseEvent !== 'undefined' && error instanceof CloseEvent) {
            const reason = `${error.code} ${error.reason || ''}`.trim();
            sink.error?.(new Error(`WebSocket closed: ${reason}`));
          } else if (Array.isArray(error)) {
            sink.next?.({ errors: error });
            sink.complete?.();
          } else {
            sink.error?.(error);
          }
        },
      });
      return { unsubscribe: dispose };
    },
  };
}

function fetcher(params, opts = {}) {
  const headers = cleanHeaders(opts.headers);
  const operation =
    params.operationName !== 'IntrospectionQuery' && opts.documentAST
      ? getOperationAST(opts.documentAST, params.operationName || undefined)
      : null;
  const isSubscription = operation?.operation === 'subscription';
  if (isSubscription) return subscribeOverWebSocket(params, headers);
  return httpFetch(params, headers);
}

// ---------------------------------------------------------------------------
// Tabs.
// ---------------------------------------------------------------------------

// JSONC: the headers editor accepts comments, so this default sends no header.
const DEFAULT_HEADERS = `{
  // HTTP headers for each request; Authorization also goes
  // in the WebSocket init payload of subscriptions. Requests
  // are anonymous until you add a token from signIn:
  // "Authorization": "Bearer <access token>"
}
`;

function welcomeQuery(examples) {
  const lines = [
    '# Justice Counts GraphQL',
    '#',
    '# Run an operation with the play button (Ctrl/Cmd-Enter).',
    '# The book icon opens the schema documentation.',
    '# To act as a signed-in user, put an access token from',
    '# the signIn mutation in the Headers editor below.',
  ];
  const names = examples
    .map((example) => (typeof example.name === 'string' ? example.name.replace(/\s+/g, ' ').trim() : ''))
    .filter((name) => name !== '');
  if (names.length > 0) {
    lines.push('#', '# The other tabs hold the operations the frontend uses:');
    for (const name of names) lines.push(`#   - ${name}`);
  }
  lines.push('', 'query Welcome {', '  __typename', '}', '');
  return lines.join('\n');
}

function variablesText(variables) {
  if (variables === undefined || variables === null) return null;
  if (typeof variables === 'string') return variables;
  return JSON.stringify(variables, null, 2);
}

const defaultTabs = [
  { query: welcomeQuery(config.examples), headers: DEFAULT_HEADERS },
  ...config.examples.map((example) => ({
    query: example.query,
    variables: variablesText(example.variables),
    headers: DEFAULT_HEADERS,
  })),
];

// ---------------------------------------------------------------------------
// Hooks for tests and for the browser console.
// ---------------------------------------------------------------------------
function findModel(suffix) {
  const monaco = globalThis.__MONACO;
  if (!monaco) return undefined;
  return monaco.editor.getModels().find((model) => model.uri.toString().endsWith(suffix));
}

globalThis.JusticeCountsGraphiQL = {
  config,
  httpUrl,
  wsUrl,
  /** True once the Monaco editors exist. */
  isReady: () =>
    Boolean(findModel('operation.graphql') && findModel('response.json')),
  getQuery: () => findModel('operation.graphql')?.getValue(),
  setQuery: (text) => findModel('operation.graphql')?.setValue(text),
  getVariables: () => findModel('variables.json')?.getValue(),
  setVariables: (text) => findModel('variables.json')?.setValue(text),
  getHeaders: () => findModel('request-headers.json')?.getValue(),
  setHeaders: (text) => findModel('request-headers.json')?.setValue(text),
  getResponse: () => findModel('response.json')?.getValue(),
  /** Clicks the execute (play) button. */
  run: () => document.querySelector('.graphiql-execute-button')?.click(),
};

// ---------------------------------------------------------------------------
// Render.
// ---------------------------------------------------------------------------
const root = createRoot(document.getElementById('graphiql'));
root.render(
  <GraphiQL
    fetcher={fetcher}
    defaultTabs={defaultTabs}
    defaultHeaders={DEFAULT_HEADERS}
    shouldPersistHeaders={false}
    isHeadersEditorEnabled
  >
    <GraphiQL.Logo>Justice Counts GraphQL</GraphiQL.Logo>
  </GraphiQL>,
);
