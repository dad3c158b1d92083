/**
 * The gateway's side of src/tools/deploy/netns.test.ts, run by it inside the gateway's network namespace
 * (`ip netns exec`): the Knot simulator, the gateway (a child process, so in the same namespace) and the
 * Dotva simulator, then one card through the whole flow to the custody address across the veth. Prints
 * one JSON line with what the test asserts; card data never leaves this process.
 *
 * Environment: NETNS_CUSTODY_ADDRESS (host:port), NETNS_PKI_DIR (a dev PKI made by makeDevPki),
 * NETNS_WORK (an empty directory for the gateway's SQLite file).
 */
import { makeDevPki } from "../dev-pki.js";
import { type Proc, startGatewayProcess } from "../processes.js";
import { gatewayEnvFor, type Parties, sendOneCard, startParties } from "./card-flow.js";

const need = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is required`);
  return v;
};

let gateway: Proc | undefined;
let parties: Parties | undefined;
let result: Record<string, unknown>;
try {
  parties = await startParties(makeDevPki(need("NETNS_PKI_DIR")));
  const gw = await startGatewayProcess(
    gatewayEnvFor(parties, need("NETNS_WORK"), need("NETNS_CUSTODY_ADDRESS")),
  );
  gateway = gw.proc;
  result = { ...(await sendOneCard(parties, gw.url, 31_337)) };
} catch (error) {
  result = { error: (error as Error).message };
} finally {
  await gateway?.stop();
  await parties?.knot.close();
}
process.stdout.write(`${JSON.stringify(result)}\n`);
