/**
 * grpc.health.v1.Health (Check and Watch), written here from the standard .proto
 * (proto/grpc/health/v1/health.proto): forty lines, versus a dependency that brings its own copy of
 * proto-loader and protobufjs. Service names: "" (the server) and "custody.v1.CardCustody".
 */
import {
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
  status,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import type { CallerIdentity, PeerIdentity } from "./caller-identity.js";
import { toGrpcFailure } from "./errors.js";

export const CUSTODY_SERVICE_NAME = "custody.v1.CardCustody";
type ServingStatus = "SERVING" | "NOT_SERVING" | "SERVICE_UNKNOWN";
interface HealthRequest {
  service: string;
}
interface HealthResponse {
  status: ServingStatus;
}

export class HealthState {
  private serving = false;
  private readonly watchers = new Set<ServerWritableStream<HealthRequest, HealthResponse>>();

  statusOf(service: string): ServingStatus | undefined {
    if (service !== "" && service !== CUSTODY_SERVICE_NAME) return undefined;
    return this.serving ? "SERVING" : "NOT_SERVING";
  }

  set(serving: boolean): void {
    this.serving = serving;
    for (const call of this.watchers)
      call.write({ status: this.statusOf(call.request.service) ?? "SERVICE_UNKNOWN" });
  }

  /** Ends every Watch stream, so a graceful shutdown is not held open by them. */
  endWatchers(): void {
    for (const call of this.watchers) call.end();
    this.watchers.clear();
  }

  implementation(
    /** Whether this caller may ask; decided per call, so it can follow a reloaded caller policy. */
    allowed: (identity: CallerIdentity) => boolean,
    callerOf: (
      call: ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>,
    ) => PeerIdentity,
    skipCallerCheck: boolean,
  ): UntypedServiceImplementation {
    /** Undefined when the call may proceed, else the status to end it with. */
    const refusal = (
      call: ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>,
    ): { code: status; details: string } | undefined => {
      if (skipCallerCheck) return undefined;
      const peer = callerOf(call);
      if (!peer.ok) return { code: toGrpcFailure(peer.error).grpcStatus, details: peer.error.message };
      if (!allowed(peer.identity)) return { code: status.PERMISSION_DENIED, details: "caller not allowed" };
      return undefined;
    };
    return {
      Check: (
        call: ServerUnaryCall<HealthRequest, HealthResponse>,
        callback: sendUnaryData<HealthResponse>,
      ) => {
        const refused = refusal(call);
        if (refused) return callback(refused);
        const current = this.statusOf(call.request.service);
        if (current === undefined) return callback({ code: status.NOT_FOUND, details: "unknown service" });
        callback(null, { status: current });
      },
      Watch: (call: ServerWritableStream<HealthRequest, HealthResponse>) => {
        const refused = refusal(call);
        if (refused) {
          call.emit("error", refused);
          return;
        }
        call.write({ status: this.statusOf(call.request.service) ?? "SERVICE_UNKNOWN" });
        this.watchers.add(call);
        call.on("cancelled", () => this.watchers.delete(call));
      },
    };
  }
}
