// A real GraphQL client for the tests: Apollo Client 3 (the default error policy, which throws when a
// response carries any error) sends one query to the gateway and prints what the application gets.
//
//   node tests/node/client_query.mjs URL QUERY [VARIABLES_JSON]
//
// The cache learns the schema's abstract types (possibleTypes) from the gateway's introspection first,
// as an application generating them would, so fragments on interfaces and unions are matched. Prints
// one JSON line {"data": ...} and exits 0, or {"error": message} and exits 1 when the query throws.
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client/core/index.js";

const [url, query, variables] = process.argv.slice(2);
if (!url || !query) {
  console.error("usage: client_query.mjs URL QUERY [VARIABLES_JSON]");
  process.exit(2);
}

async function possibleTypes() {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query: "{ __schema { types { kind name possibleTypes { name } } } }" }),
  });
  const { data } = await response.json();
  const found = {};
  for (const type of data.__schema.types) {
    if (type.possibleTypes) found[type.name] = type.possibleTypes.map((t) => t.name);
  }
  return found;
}

const client = new ApolloClient({
  link: new HttpLink({ uri: url, fetch }),
  cache: new InMemoryCache({ possibleTypes: await possibleTypes() }),
});
try {
  const result = await client.query({
    query: gql(query),
    variables: variables ? JSON.parse(variables) : undefined,
    fetchPolicy: "no-cache",
  });
  console.log(JSON.stringify({ data: result.data }));
} catch (error) {
  console.log(JSON.stringify({ error: String(error.message ?? error) }));
  process.exit(1);
}
