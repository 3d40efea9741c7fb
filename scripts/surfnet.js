// Runs surfpool's embedded Solana runtime (npm @solana/surfpool-linux-x64-gnu) as a local JSON-RPC
// validator for tests and the demo: offline, on 127.0.0.1 with ports the OS picks.
//
// Environment:
//   PROGRAMS  "<program id>=<path to .so>,..."   deployed before READY
//   FUND      "<pubkey>=<lamports>,..."          accounts credited before READY
// Prints `READY rpc=<url> ws=<url>` once serving, and stops cleanly on SIGTERM or SIGINT.
"use strict";
const { Surfnet } = require("@solana/surfpool-linux-x64-gnu");

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

const started = Date.now();
const surfnet = Surfnet.startWithConfig({ offline: true, blockProductionMode: "transaction" });
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
console.log(`READY rpc=${surfnet.rpcUrl} ws=${surfnet.wsUrl} startup_ms=${Date.now() - started}`);

function stop() {
  surfnet.stop();
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
