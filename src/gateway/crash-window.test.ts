/**
 * The crash window between Knot's 200 and our record of it (issue 17), bounded: the gateway process is
 * SIGKILLed while POST /card requests are in flight at the Knot simulator (which keeps a card whose
 * connection died, as a real server would), a new process takes over the same database, and every job
 * is followed to its end. src/tools/faults/crash-window.ts runs the same trial many times at random
 * kill moments for the figure in docs/gateway.md.
 */
import { describe, expect, it } from "vitest";
import { measureCrashWindow } from "../tools/faults/crash-window.js";

describe("gateway SIGKILLed during POST /card", () => {
  it("with Knot's CARD_UPDATING, no card is lost and none reaches Knot twice", async () => {
    const r = await measureCrashWindow({
      runs: 1,
      cards: 8,
      knotDelayMs: 300,
      kill: "first-post",
      killWindowMs: 0,
      cardUpdating: true,
    });
    expect(r.tasks).toBe(8);
    // The kill landed inside the window: Knot was holding cards whose answers were never recorded.
    expect(r.inFlightAtKill).toBeGreaterThanOrEqual(1);
    expect(r.confirmedByKnot).toBeGreaterThanOrEqual(1);
    expect(r.lost).toBe(0);
    expect(r.notSent, r.notSentHow.join("; ")).toBe(0);
    expect(r.duplicates).toBe(0);
  }, 60_000);

  it("when Knot stays silent, nothing is lost and a duplicate is only ever a re-posted unanswered POST", async () => {
    const r = await measureCrashWindow({
      runs: 1,
      cards: 6,
      knotDelayMs: 300,
      kill: "first-post",
      killWindowMs: 0,
      cardUpdating: false,
    });
    expect(r.lost).toBe(0);
    expect(r.notSent, r.notSentHow.join("; ")).toBe(0);
    expect(r.inFlightAtKill).toBeGreaterThanOrEqual(1);
    expect(r.confirmedByKnot).toBe(0);
    // Every card Knot was holding at the kill is posted again after the grace: the remaining window.
    expect(r.duplicates).toBeGreaterThanOrEqual(1);
    expect(r.duplicates).toBeLessThanOrEqual(r.resent);
  }, 60_000);
});
