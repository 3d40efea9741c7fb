// Runs surfpool's embedded Solana runtime (npm @solana/surfpool-linux-x64-gnu) as a local JSON-RPC
// validator for tests and the demo: offline, on 127.0.0.1 with ports the OS picks.
//
// Environment:
//   PROGRAMS  "<program id>=<path to .so>,..."   deployed before READY
//   FUND      "<pubkey>=<lamports>,..."          accounts credited before READY
//   RPC_PORT  JSON-RPC on this port and its websocket on the next (surfpool itself always
//             takes free ports; these forward to them); unset: surfpool's own ports
// Prints `READY rpc=<url> ws=<url>` once serving, and stops cleanly on SIGTERM or SIGINT.
//
// The Clock sysvar keeps real time, as a cluster's does. Surfpool moves its clock only by the
// slot time (1 ms unless set) for each block it makes, and it makes a block per transaction
// here ("transaction" mode, so a transaction confirms at once): left alone, its clock stays
// near where it started (measured 336 s behind after a few minutes). So once a second this
// script moves the clock to the wall clock with surfpool's time travel (a block too; it
// never moves the clock back, and with 1 ms slots the transactions cannot push it ahead).
"use strict";
const net = require("node:net");
const { Surfnet } = require("@solana/surfpool-linux-x64-gnu");

const HOST = "127.0.0.1";
// How often the clock is checked against the wall clock: it is moved each new second.
const CLOCK_CHECK_MS = 100;

function pairs(name) {
  return (process.env[name] || "")
    .split(",")
    .filter(Boolean)
    .map((item) => {
      const at = item.indexOf("=");
      if (at < 1) throw new Error(`${name}: expected key=value, got "${item}"`);
      return [item.slice(0, at), item.slice(at + 1)];
    });
}

// A TCP forwarder from HOST:port to the URL's port: HTTP and websockets pass through unchanged.
function forward(port, url) {
  const target = Number(new URL(url).port);
  const server = net.createServer((client) => {
    const upstream = net.connect(target, HOST);
    client.pipe(upstream).pipe(client);
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, HOST, () => resolve(server));
  });
}

// Moves the Clock sysvar to the wall clock each time a new second starts. The Clock holds whole
// seconds, so it trails the wall clock by under a second and CLOCK_CHECK_MS.
function keepRealTime(surfnet) {
  let second = 0;
  function sync() {
    const now = Date.now();
    if (Math.floor(now / 1000) <= second) return;
    try {
      surfnet.timeTravelToTimestamp(now);
      second = Math.floor(now / 1000);
    } catch (error) {
      // Only a clock already past the wall clock refuses; it is left to the wall clock.
      console.error(`clock not moved to ${now}: ${error.message}`);
      second = Math.floor(now / 1000);
    }
  }
  sync();
  setInterval(sync, CLOCK_CHECK_MS);
}

async function main() {
  const started = Date.now();
  const surfnet = Surfnet.startWithConfig({ offline: true, blockProductionMode: "transaction" });
  const servers = [];
  function stop(code) {
    for (const server of servers) server.close();
    surfnet.stop();
    process.exit(code);
  }
  process.on("SIGTERM", () => stop(0));
  process.on("SIGINT", () => stop(0));
  for (const [programId, soPath] of pairs("PROGRAMS")) {
    surfnet.deploy({ programId, soPath });
    console.log(`deployed ${programId} from ${soPath}`);
  }
  for (const [address, lamports] of pairs("FUND")) {
    surfnet.fundSol(address, Number(BigInt(lamports)));
    console.log(`funded ${address} with ${lamports} lamports`);
  }
  // The SDK queues an event per slot and transaction until someone drains them; undrained,
  // surfpool 1.5 stops answering after about a thousand (minutes idle, or a few hundred sends).
  setInterval(() => surfnet.drainEvents(), 100);
  keepRealTime(surfnet);
  let rpcUrl = surfnet.rpcUrl;
  let wsUrl = surfnet.wsUrl;
  if (process.env.RPC_PORT) {
    const port = Number(process.env.RPC_PORT);
    try {
      servers.push(await forward(port, surfnet.rpcUrl), await forward(port + 1, surfnet.wsUrl));
    } catch (error) {
      console.error(`cannot listen on ${HOST}:${port} and ${port + 1}: ${error.message}`);
      stop(1);
    }
    rpcUrl = `http://${HOST}:${port}`;
    wsUrl = `ws://${HOST}:${port + 1}`;
  }
  console.log(`READY rpc=${rpcUrl} ws=${wsUrl} startup_ms=${Date.now() - started}`);
}

main();
