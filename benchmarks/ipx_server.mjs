// ipx for the benchmark suite (benchmarks/competitors.py starts it):
//
//   node benchmarks/ipx_server.mjs MODULES ORIGINALS PORT
//
// MODULES is the node_modules folder of .bench-node/ (benchmarks/node.py),
// where ipx and sharp are installed; the script lives in benchmarks/, so it
// loads ipx from there by path. ipx as its README sets it up: createIPX with
// file storage over ORIGINALS, its Node listener; every setting at ipx's
// and sharp's defaults (quality and format come in each URL). One process,
// on 127.0.0.1 only; /healthz answers 200 for the suite's start-up check
// (ipx itself would take "healthz" for modifiers without an image).
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { resolve } from "node:path";

const [modules, originals, port] = process.argv.slice(2);
if (!modules || !originals || !port) {
  console.error("usage: node ipx_server.mjs MODULES ORIGINALS PORT");
  process.exit(2);
}
const require = createRequire(resolve(modules, "ipx-server.cjs"));
const { createIPX, createIPXNodeServer, ipxFSStorage } = require("ipx");

const ipx = createIPX({ storage: ipxFSStorage({ dir: originals }) });
const handler = createIPXNodeServer(ipx);
const server = createServer((request, response) => {
  if (request.url === "/healthz") {
    response.end("ok");
    return;
  }
  handler(request, response);
});
// The backlog the other competitors get (gunicorn --backlog 2048).
server.listen(Number(port), "127.0.0.1", 2048);
process.on("SIGTERM", () => server.close(() => process.exit(0)));
