// The benchmark's REST upstream: users with a nested address and orders with a money total, a route
// that always fails (for the breaker scenario), pages of 20 posts and a batch of users by ids (for the
// join scenario), and its own OpenAPI 3.0 description at /openapi.json. `GET /calls` says how many
// calls it answered (the join scenario's calls per request are read from it).
// Answers are computed from the id, so every id exists and every target sees the same data.
// Usage: node rest.mjs [--port 4001] [--latency-ms 0]; `?delayMs=N` on a call overrides the latency.
import http from 'node:http';
import { announce, later, options } from './common.mjs';

const { port, latencyMs } = options(4001);

const CITIES = [
  ['London', 'GB', 'SW1Y 4JH'],
  ['Arlington', 'US', '22202'],
  ['Lyon', 'FR', '69002'],
  ['Osaka', 'JP', '530-0001'],
];
const STATUSES = ['PLACED', 'PAID', 'SHIPPED', 'DELIVERED'];

function user(id) {
  const n = Number.parseInt(id, 10) || 0;
  const [city, country, zip] = CITIES[n % CITIES.length];
  return {
    id,
    name: `User ${id}`,
    email: `user${id}@example.com`,
    address: { street: `${(n % 200) + 1} Main Street`, city, zip, country },
    tags: n % 2 ? ['admin', 'beta'] : ['beta'],
    internalScore: n % 97, // undeclared by the gateways: must not be exposed
  };
}

function order(id) {
  const n = Number.parseInt(id, 10) || 0;
  return {
    id,
    userId: String(n % 1000),
    status: STATUSES[n % STATUSES.length],
    total: { amount: ((n % 500) * 1.25 + 9.99).toFixed(2), currency: n % 3 ? 'EUR' : 'USD' },
    items: [
      { productId: String(n % 50), quantity: (n % 4) + 1 },
      { productId: String((n + 7) % 50), quantity: 1 },
    ],
  };
}

const POSTS_PER_PAGE = 20;

// Page `start`: posts start .. start+19, post n written by user n (twenty authors per page).
function posts(start) {
  const first = Number.parseInt(start, 10) || 0;
  return Array.from({ length: POSTS_PER_PAGE }, (_, k) => {
    const n = first + k;
    return { id: String(n), userId: String(n), title: `Post ${n}` };
  });
}

const delayParam = {
  name: 'delayMs',
  in: 'query',
  required: false,
  description: 'Answer after this many milliseconds',
  schema: { type: 'integer' },
};
const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };
const json = (ref) => ({ content: { 'application/json': { schema: { $ref: `#/components/schemas/${ref}` } } } });
const OPENAPI = JSON.stringify({
  openapi: '3.0.3',
  info: { title: 'Accounts (benchmark REST upstream)', version: '1.0.0' },
  servers: [{ url: `http://127.0.0.1:${port}` }],
  paths: {
    '/users/{id}': {
      get: {
        operationId: 'getUser',
        parameters: [idParam, delayParam],
        responses: { 200: { description: 'The user', ...json('User') } },
      },
    },
    '/orders/{id}': {
      get: {
        operationId: 'getOrder',
        parameters: [idParam, delayParam],
        responses: { 200: { description: 'The order', ...json('Order') } },
      },
    },
    '/posts': {
      get: {
        operationId: 'listPosts',
        parameters: [{ name: 'start', in: 'query', required: false, schema: { type: 'integer' } }],
        responses: {
          200: {
            description: 'A page of posts',
            content: {
              'application/json': { schema: { type: 'array', items: { $ref: '#/components/schemas/Post' } } },
            },
          },
        },
      },
    },
    '/users': {
      get: {
        operationId: 'getUsers',
        parameters: [
          {
            name: 'ids',
            in: 'query',
            required: true,
            style: 'form',
            explode: true,
            schema: { type: 'array', items: { type: 'string' } },
          },
        ],
        responses: {
          200: {
            description: 'The users with these ids',
            content: {
              'application/json': { schema: { type: 'array', items: { $ref: '#/components/schemas/User' } } },
            },
          },
        },
      },
    },
    '/broken/{id}': {
      get: {
        operationId: 'getBroken',
        parameters: [idParam],
        // Only the success is described, so a gateway treats the 503 it always gets as a failure.
        responses: { 200: { description: 'Never sent: this route always fails', ...json('User') } },
      },
    },
  },
  components: {
    schemas: {
      Address: {
        type: 'object',
        properties: {
          street: { type: 'string' },
          city: { type: 'string' },
          zip: { type: 'string' },
          country: { type: 'string' },
        },
      },
      User: {
        type: 'object',
        required: ['id'],
        properties: {
          id: { type: 'string' },
          name: { type: 'string' },
          email: { type: 'string' },
          address: { $ref: '#/components/schemas/Address' },
          tags: { type: 'array', items: { type: 'string' } },
        },
      },
      Post: {
        type: 'object',
        required: ['id'],
        properties: { id: { type: 'string' }, userId: { type: 'string' }, title: { type: 'string' } },
      },
      Money: {
        type: 'object',
        properties: { amount: { type: 'string' }, currency: { type: 'string' } },
      },
      OrderItem: {
        type: 'object',
        properties: { productId: { type: 'string' }, quantity: { type: 'integer' } },
      },
      Order: {
        type: 'object',
        required: ['id'],
        properties: {
          id: { type: 'string' },
          userId: { type: 'string' },
          status: { type: 'string' },
          total: { $ref: '#/components/schemas/Money' },
          items: { type: 'array', items: { $ref: '#/components/schemas/OrderItem' } },
        },
      },
    },
  },
});

const ROUTES = [
  [/^\/users\/([^/]+)$/, user],
  [/^\/orders\/([^/]+)$/, order],
];

function send(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

let calls = 0;

const server = http.createServer((req, res) => {
  const q = req.url.indexOf('?');
  const path = q < 0 ? req.url : req.url.slice(0, q);
  const query = new URLSearchParams(q < 0 ? '' : req.url.slice(q + 1));
  const delay = query.has('delayMs') ? Number(query.get('delayMs')) : latencyMs;
  if (path === '/openapi.json') return send(res, 200, OPENAPI);
  if (path === '/healthz') return send(res, 200, '{"status":"ok"}');
  if (path === '/calls') return send(res, 200, JSON.stringify({ calls }));
  calls += 1;
  if (path === '/posts') return later(delay, () => send(res, 200, JSON.stringify(posts(query.get('start')))));
  if (path === '/users') {
    const body = JSON.stringify(query.getAll('ids').map(user));
    return later(delay, () => send(res, 200, body));
  }
  if (path.startsWith('/broken/')) return send(res, 503, '{"error":"unavailable"}');
  for (const [pattern, make] of ROUTES) {
    const match = pattern.exec(path);
    if (match) {
      const body = JSON.stringify(make(decodeURIComponent(match[1])));
      return later(delay, () => send(res, 200, body));
    }
  }
  send(res, 404, '{"error":"not found"}');
});
announce(server, 'rest upstream', port);
