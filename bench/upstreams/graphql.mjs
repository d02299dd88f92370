// The benchmark's GraphQL upstream: a product catalogue (a product with a price) on graphql-js and
// Node's http module. Parsed and validated documents are cached by their text, as a production
// server would, so the upstream is never the bottleneck.
// Usage: node graphql.mjs [--port 4002] [--latency-ms 0]; POST /graphql only.
import http from 'node:http';
import { createRequire } from 'node:module';
import { announce, later, options } from './common.mjs';

// graphql-js is installed into bench/node by the set-up, not next to this file.
const require = createRequire(new URL('../node/package.json', import.meta.url));
const { buildSchema, execute, parse, validate } = require('graphql');

const { port, latencyMs } = options(4002);

const schema = buildSchema(`
  type Price { amount: Float! currency: String! }
  type Product {
    id: ID!
    title: String!
    description: String
    price: Price!
    inStock: Boolean!
    tags: [String!]!
  }
  type Query {
    product(id: ID!): Product
    products(ids: [ID!]!): [Product!]!
  }
`);

function product(id) {
  const n = Number.parseInt(id, 10) || 0;
  return {
    id,
    title: `Product ${id}`,
    description: `A sturdy thing, model ${n % 100}`,
    price: { amount: Math.round(((n % 300) * 3.33 + 4.99) * 100) / 100, currency: n % 2 ? 'EUR' : 'USD' },
    inStock: n % 5 !== 0,
    tags: n % 3 ? ['tools'] : ['tools', 'sale'],
  };
}

const rootValue = {
  product: ({ id }) => product(id),
  products: ({ ids }) => ids.map(product),
};

const documents = new Map();
function prepared(text) {
  let entry = documents.get(text);
  if (!entry) {
    try {
      const document = parse(text);
      const errors = validate(schema, document);
      entry = errors.length ? { errors } : { document };
    } catch (error) {
      entry = { errors: [error] };
    }
    if (documents.size < 1000) documents.set(text, entry);
  }
  return entry;
}

function send(res, status, payload) {
  const body = JSON.stringify(payload);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

const server = http.createServer((req, res) => {
  if (req.url.startsWith('/healthz')) return send(res, 200, { status: 'ok' });
  if (req.method !== 'POST') return send(res, 405, { errors: [{ message: 'POST only' }] });
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    let request;
    try {
      request = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      return send(res, 400, { errors: [{ message: 'body is not JSON' }] });
    }
    const entry = prepared(String(request.query ?? ''));
    if (entry.errors) return send(res, 400, { errors: entry.errors.map((e) => ({ message: e.message })) });
    const result = execute({
      schema,
      document: entry.document,
      rootValue,
      variableValues: request.variables,
      operationName: request.operationName,
    });
    later(latencyMs, () => send(res, 200, result));
  });
});
announce(server, 'graphql upstream', port);
