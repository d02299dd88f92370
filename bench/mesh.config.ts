// Mesh Compose config for the benchmark: one supergraph from the REST upstream (through the OpenAPI
// description it serves), the GraphQL upstream and the gRPC upstream (@omnigraph/grpc, from its proto);
// Post.author joins a post to its user, batched by Mesh's @resolveTo with keysArg (all the posts'
// userIds in one getUsers call). bench/run.py runs `mesh-compose -c ../mesh.config.ts`
// from bench/node with the upstreams up; the output lands there (git-ignored).
import { defineConfig, loadGraphQLHTTPSubgraph } from '@graphql-mesh/compose-cli';
import { loadGrpcSubgraph } from '@omnigraph/grpc';
import { loadOpenAPISubgraph } from '@omnigraph/openapi';

const REST = process.env.REST_URL || 'http://127.0.0.1:4001';
const GQL = process.env.GQL_URL || 'http://127.0.0.1:4002/graphql';
const GRPC = process.env.GRPC_ENDPOINT || '127.0.0.1:4003';

export const composeConfig = defineConfig({
  output: process.env.SUPERGRAPH || 'supergraph.graphql',
  subgraphs: [
    {
      sourceHandler: loadOpenAPISubgraph('Accounts', {
        source: `${REST}/openapi.json`,
        endpoint: REST,
      }),
    },
    {
      sourceHandler: loadGraphQLHTTPSubgraph('Catalog', { endpoint: GQL }),
    },
    {
      // The demo warehouse's proto, relative to bench/node where mesh-compose runs.
      sourceHandler: loadGrpcSubgraph('Warehouse', {
        endpoint: GRPC,
        source: '../../aggregator/demo/protos/inventory.proto',
      }),
    },
  ],
  additionalTypeDefs: /* GraphQL */ `
    extend type Post {
      author: User
        @resolveTo(
          sourceName: "Accounts"
          sourceTypeName: "Query"
          sourceFieldName: "getUsers"
          keyField: "userId"
          keysArg: "ids"
        )
    }
  `,
});
