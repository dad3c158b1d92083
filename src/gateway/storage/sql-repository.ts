/**
 * The repository methods both drivers share: every query is in sql.ts, so a driver only says how a
 * write transaction runs (SQLite: group commit on one connection; PostgreSQL: a pooled transaction),
 * where reads go, and how claimed job rows are locked.
 */
import type { GatewayRepository } from "./repository.js";
import * as q from "./sql.js";

export abstract class SqlRepository implements GatewayRepository {
  abstract readonly driver: GatewayRepository["driver"];
  /** Autocommit reads. */
  protected abstract readonly r: q.SqlRunner;
  /** Row-locking clause of the job claim ("FOR UPDATE SKIP LOCKED" where several instances share jobs). */
  protected abstract readonly claimLock: string;
  /** Runs `op` in one write transaction; resolves only once it is durably committed. */
  protected abstract write<T>(op: (tx: q.SqlRunner) => Promise<T>): Promise<T>;
  abstract migrate(): Promise<void>;
  abstract ping(): Promise<void>;
  abstract close(): Promise<void>;

  storeDotvaCard: GatewayRepository["storeDotvaCard"] = (card, digest) =>
    this.write((tx) => q.storeDotvaCard(tx, card, digest));
  markCardUnusable: GatewayRepository["markCardUnusable"] = (uuid, reason) =>
    this.write((tx) => q.markCardUnusable(tx, uuid, reason));
  quarantineDotva: GatewayRepository["quarantineDotva"] = (d) => this.write((tx) => q.quarantineDotva(tx, d));
  listQuarantine: GatewayRepository["listQuarantine"] = (limit) => q.listQuarantine(this.r, limit);
  recordUnknownEvent: GatewayRepository["recordUnknownEvent"] = (e) =>
    this.write((tx) => q.recordUnknownEvent(tx, e));
  countUnknownEvents: GatewayRepository["countUnknownEvents"] = (source) =>
    q.countUnknownEvents(this.r, source);
  getCard: GatewayRepository["getCard"] = (uuid) => q.getCard(this.r, uuid);
  findCardForTask: GatewayRepository["findCardForTask"] = (user, id) => q.findCardForTask(this.r, user, id);
  bindCard: GatewayRepository["bindCard"] = (user, workspace, card, now) =>
    this.write((tx) => q.bindCard(tx, user, workspace, card, now));
  purgeSecrets: GatewayRepository["purgeSecrets"] = (receivedBefore, sentBefore, now) =>
    this.write((tx) => q.purgeSecrets(tx, receivedBefore, sentBefore, now));
  storedSecretsByFingerprint: GatewayRepository["storedSecretsByFingerprint"] = () =>
    q.storedSecretsByFingerprint(this.r);
  deleteCardholder: GatewayRepository["deleteCardholder"] = (id) =>
    this.write((tx) => q.deleteCardholder(tx, id));
  recordKnotEvent: GatewayRepository["recordKnotEvent"] = (e) => this.write((tx) => q.recordKnotEvent(tx, e));
  getTask: GatewayRepository["getTask"] = (id) => q.getTask(this.r, id);
  listMerchants: GatewayRepository["listMerchants"] = () => q.listMerchants(this.r);
  listTransactionEvents: GatewayRepository["listTransactionEvents"] = (user, limit) =>
    q.listTransactionEvents(this.r, user, limit);
  putCardholder: GatewayRepository["putCardholder"] = (id, profile, now) =>
    this.write((tx) => q.putCardholder(tx, id, profile, now));
  getCardholder: GatewayRepository["getCardholder"] = (id) => q.getCardholder(this.r, id);
  claimJobs: GatewayRepository["claimJobs"] = (owner, now, leaseUntil, limit) =>
    this.write((tx) => q.claimJobs(tx, owner, now, leaseUntil, limit, this.claimLock));
  renewLease: GatewayRepository["renewLease"] = (id, owner, leaseUntil) =>
    this.write((tx) => q.renewLease(tx, id, owner, leaseUntil));
  beginPost: GatewayRepository["beginPost"] = (id, owner, at, leaseUntil) =>
    this.write((tx) => q.beginPost(tx, id, owner, at, leaseUntil));
  knotCardWord: GatewayRepository["knotCardWord"] = (id) => q.knotCardWord(this.r, id);
  finishJob: GatewayRepository["finishJob"] = (id, owner, outcome) =>
    this.write((tx) => q.finishJob(tx, id, owner, outcome));
  expireJobs: GatewayRepository["expireJobs"] = (now) => this.write((tx) => q.expireJobs(tx, now));
}
