// Apollo Client 3 with its automatic persisted queries link (createPersistedQueryLink, SHA-256 from
// node:crypto) sends the same query twice to the gateway, and prints what it sent and got.
//
//   node tests/node/client_apq.mjs URL QUERY [get]
//
// With "get", the link's useGETForHashedQueries is on: hash-only requests go as GET. Each request the
// link made is recorded as it left (method, whether the query and the hash were in it) with the
// answer's HTTP status and error codes. Prints one JSON line {"results": [data, data], "requests":
// [...]} and exits 0, or {"error": message, "requests": [...]} and exits 1 when a query throws.
import { createHash } from "node:crypto";
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client/core/index.js";
import { createPersistedQueryLink } from "@apollo/client/link/persisted-queries/index.js";

const [url, query, mode] = process.argv.slice(2);
if (!url || !query) {
  console.error("usage: client_apq.mjs URL QUERY [get]");
  process.exit(2);
}

const requests = [];

async function recordingFetch(input, init = {}) {
  const method = init.method ?? "GET";
  const sent = method === "GET" ? Object.fromEntries(new URL(input).searchParams) : JSON.parse(init.body);
  const extensions = typeof sent.extensions === "string" ? JSON.parse(sent.extensions) : sent.extensions;
  const response = await fetch(input, init);
  const answer = await response.clone().json();
  requests.push({
    method,
    sentQuery: typeof sent.query === "string" && sent.query.length > 0,
    sentHash: Boolean(extensions?.persistedQuery?.sha256Hash),
    status: response.status,
    codes: (answer.errors ?? []).map((error) => error.extensions?.code ?? null),
  });
  return response;
}

const sha256 = (text) => createHash("sha256").update(text).digest("hex");
const client = new ApolloClient({
  link: createPersistedQueryLink({ sha256, useGETForHashedQueries: mode === "get" }).concat(
    new HttpLink({ uri: url, fetch: recordingFetch }),
  ),
  cache: new InMemoryCache(),
});
const results = [];
try {
  for (let n = 0; n < 2; n += 1) {
    const result = await client.query({ query: gql(query), fetchPolicy: "no-cache" });
    results.push(result.data);
  }
  console.log(JSON.stringify({ results, requests }));
} catch (error) {
  console.log(JSON.stringify({ error: String(error.message ?? error), requests }));
  process.exit(1);
}
