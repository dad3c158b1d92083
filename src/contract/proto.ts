/**
 * The one place the .proto files are loaded at run time, so the custody server and the gateway client
 * decode messages identically: field names as written in the .proto (snake_case), 64-bit integers as
 * strings, enums by name, defaults filled in, oneofs reported.
 */
import { fileURLToPath } from "node:url";
import {
  type CallOptions,
  type ChannelCredentials,
  type ChannelOptions,
  type Client,
  type ClientReadableStream,
  type ClientUnaryCall,
  loadPackageDefinition,
  type ServiceDefinition,
  type ServiceError,
} from "@grpc/grpc-js";
import { loadSync, type Options } from "@grpc/proto-loader";
import type { ProtoGrpcType as CustodyGrpcType } from "./generated/custody.js";

export const PROTO_LOADER_OPTIONS: Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

export const PROTO_ROOT = fileURLToPath(new URL("../../proto/", import.meta.url));
export const CUSTODY_PROTO = "custody/v1/custody.proto";
export const HEALTH_PROTO = "grpc/health/v1/health.proto";

export function loadCustodyProto(): CustodyGrpcType {
  const definition = loadSync(CUSTODY_PROTO, { ...PROTO_LOADER_OPTIONS, includeDirs: [PROTO_ROOT] });
  return loadPackageDefinition(definition) as unknown as CustodyGrpcType;
}

export type ServingStatus = "UNKNOWN" | "SERVING" | "NOT_SERVING" | "SERVICE_UNKNOWN";

/** grpc.health.v1 client, typed by hand: two small messages that have not changed since 2016. */
export interface HealthClient extends Client {
  Check(
    request: { service: string },
    options: CallOptions,
    callback: (err: ServiceError | null, response?: { status: ServingStatus }) => void,
  ): ClientUnaryCall;
  Watch(request: { service: string }, options?: CallOptions): ClientReadableStream<{ status: ServingStatus }>;
}

export interface HealthGrpcType {
  grpc: {
    health: {
      v1: {
        Health: (new (
          address: string,
          credentials: ChannelCredentials,
          options?: Partial<ChannelOptions>,
        ) => HealthClient) & { service: ServiceDefinition };
      };
    };
  };
}

export function loadHealthProto(): HealthGrpcType {
  const definition = loadSync(HEALTH_PROTO, { ...PROTO_LOADER_OPTIONS, includeDirs: [PROTO_ROOT] });
  return loadPackageDefinition(definition) as unknown as HealthGrpcType;
}
