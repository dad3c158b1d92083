// Preloaded into a service by the load test's --trace-gc (NODE_OPTIONS=--import=<this file>): Node refuses
// --trace-gc itself in NODE_OPTIONS, and V8's flags are process-wide, so setting it here traces the main
// thread and every worker isolate alike.
import { setFlagsFromString } from "node:v8";

setFlagsFromString("--trace-gc");
