// A real third-party GraphQL server for the tests: serves the SDL file given on the command line with
// @graphql-tools/mock answers, on graphql-yoga 5 (default) or Apollo Server 5 (--apollo).
//
//   node tests/node/graphql_server.mjs SCHEMA.graphql [--port N] [--apollo] [--no-introspection]
//                                      [--seed N] [--mocks MODULE.mjs]
//
// Prints one line `PORT <n>` on stdout once it accepts requests (--port 0, the default, picks a free
// port). The endpoint is http://127.0.0.1:<n>/graphql. GET /received answers the JSON list of every
// GraphQL request received so far ({query, variables, operationName}): what the gateway sent upstream.
// --no-introspection turns introspection off (as Apollo Server does in production).
// Mocks are deterministic: Math.random is seeded (--seed, default 1), and the mock store keeps the
// values it made, so the same query answers the same data every time. Custom scalars answer a string
// naming the scalar unless --mocks names a module whose default export is a @graphql-tools/mock mocks map.
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

import { addMocksToSchema } from "@graphql-tools/mock";
import { makeExecutableSchema } from "@graphql-tools/schema";
import { isScalarType, NoSchemaIntrospectionCustomRule, specifiedScalarTypes } from "graphql";

const { values: options, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    port: { type: "string", default: "0" },
    apollo: { type: "boolean", default: false },
    "no-introspection": { type: "boolean", default: false },
    seed: { type: "string", default: "1" },
    mocks: { type: "string" },
  },
});
if (positionals.length !== 1) {
  console.error("usage: graphql_server.mjs SCHEMA.graphql [--port N] [--apollo] [--no-introspection]");
  process.exit(2);
}

// mulberry32: a small seeded generator, so that mocked answers do not change from run to run.
let state = Number(options.seed) >>> 0;
Math.random = () => {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};

const typeDefs = readFileSync(positionals[0], "utf8");
const base = makeExecutableSchema({ typeDefs });
const builtin = new Set(specifiedScalarTypes.map((type) => type.name));
const mocks = {};
for (const type of Object.values(base.getTypeMap())) {
  if (isScalarType(type) && !builtin.has(type.name)) mocks[type.name] = () => `${type.name} value`;
}
if (options.mocks) {
  Object.assign(mocks, (await import(pathToFileURL(options.mocks).href)).default);
}
const schema = addMocksToSchema({ schema: base, mocks });
const introspection = !options["no-introspection"];
const received = [];

function record(body) {
  received.push({
    query: body.query ?? null,
    variables: body.variables ?? null,
    operationName: body.operationName ?? null,
  });
}

async function yogaHandler() {
  const { createYoga } = await import("graphql-yoga");
  const yoga = createYoga({
    schema,
    graphiql: false,
    logging: false,
    maskedErrors: false,
    plugins: [
      {
        onParams: ({ params }) => record(params),
        onValidate: ({ addValidationRule }) => {
          if (!introspection) addValidationRule(NoSchemaIntrospectionCustomRule);
        },
      },
    ],
  });
  return yoga;
}

async function apolloHandler() {
  const { ApolloServer, HeaderMap } = await import("@apollo/server");
  const server = new ApolloServer({
    schema,
    introspection,
    plugins: [{ requestDidStart: async ({ request }) => record(request) }],
  });
  await server.start();
  return async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const text = Buffer.concat(chunks).toString("utf8");
    const headers = new HeaderMap();
    for (const [key, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers.set(key, Array.isArray(value) ? value.join(", ") : value);
    }
    const url = new URL(req.url, "http://127.0.0.1");
    const answer = await server.executeHTTPGraphQLRequest({
      httpGraphQLRequest: {
        method: req.method.toUpperCase(),
        headers,
        search: url.search,
        body: text ? JSON.parse(text) : {},
      },
      context: async () => ({}),
    });
    for (const [key, value] of answer.headers) res.setHeader(key, value);
    res.statusCode = answer.status ?? 200;
    if (answer.body.kind === "complete") {
      res.end(answer.body.string);
    } else {
      for await (const chunk of answer.body.asyncIterator) res.write(chunk);
      res.end();
    }
  };
}

const handler = options.apollo ? await apolloHandler() : await yogaHandler();
const http = createServer((req, res) => {
  if (req.method === "GET" && req.url === "/received") {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify(received));
    return;
  }
  if (!req.url.startsWith("/graphql")) {
    res.statusCode = 404;
    res.end("not found");
    return;
  }
  Promise.resolve(handler(req, res)).catch((error) => {
    res.statusCode = 500;
    res.end(String(error));
  });
});
http.listen(Number(options.port), "127.0.0.1", () => {
  console.log(`PORT ${http.address().port}`);
});
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => http.close(() => process.exit(0)));
}
