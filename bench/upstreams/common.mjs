// Shared by the benchmark's upstreams: command-line options and artificial latency.

// `--port N` and `--latency-ms N` win over the PORT and LATENCY_MS environment variables.
export function options(defaultPort) {
  const args = process.argv.slice(2);
  const flag = (name) => {
    const at = args.indexOf(name);
    return at >= 0 ? args[at + 1] : undefined;
  };
  return {
    port: Number(flag('--port') ?? process.env.PORT ?? defaultPort),
    latencyMs: Number(flag('--latency-ms') ?? process.env.LATENCY_MS ?? 0),
  };
}

// Answers after `ms` milliseconds; at 0 the answer is sent in the same tick, so a fast upstream stays fast.
export function later(ms, send) {
  if (ms > 0) setTimeout(send, ms);
  else send();
}

// One line on stdout once listening, so whoever started the process knows it is ready.
export function announce(server, name, port) {
  server.keepAliveTimeout = 65_000;
  server.listen(port, '127.0.0.1', () => console.log(`${name} listening on http://127.0.0.1:${port}`));
}
