// The benchmark's gRPC upstream: the demo warehouse's Inventory service (aggregator/demo/protos/
// inventory.proto) on @grpc/grpc-js, which @omnigraph/grpc brings into bench/node. GetItem answers an
// item computed from its product id, so every id exists and the upstream is never the bottleneck.
// Usage: node grpc.mjs [--port 4003] [--latency-ms 0]
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { later, options } from './common.mjs';

const require = createRequire(new URL('../node/package.json', import.meta.url));
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const { port, latencyMs } = options(4003);
const PROTO = fileURLToPath(new URL('../../aggregator/demo/protos/inventory.proto', import.meta.url));
const definition = protoLoader.loadSync(PROTO, { keepCase: true, longs: String, enums: String, defaults: true });
const { inventory } = grpc.loadPackageDefinition(definition);

function item(productId) {
  const n = Number.parseInt(productId, 10) || 0;
  return {
    product_id: productId,
    quantity: n % 500,
    reserved: n % 7,
    location: n % 2 ? 'BERLIN' : 'LYON',
    restocked_at: { seconds: String(1_700_000_000 + (n % 1000) * 3600), nanos: 0 },
    unit_weight_grams: String(250 * (n % 40)),
  };
}

const server = new grpc.Server();
server.addService(inventory.v1.Inventory.service, {
  GetItem: (call, callback) => later(latencyMs, () => callback(null, item(call.request.product_id))),
  Reserve: (call, callback) => callback({ code: grpc.status.UNIMPLEMENTED, details: 'not in the benchmark' }),
});
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (error) => {
  if (error) throw error;
  console.log(`grpc-upstream listening on 127.0.0.1:${port}`);
});
