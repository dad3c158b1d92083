/** Source-IP allowlists (addresses and CIDR ranges, IPv4 and IPv6) on node's BlockList. */
import { BlockList, isIPv4 } from "node:net";

export type SourceCheck = (address: string) => boolean;

export function sourceAllowlist(entries: readonly string[]): SourceCheck {
  const list = new BlockList();
  for (const entry of entries) {
    const [address, prefix] = entry.split("/") as [string, string | undefined];
    const family = isIPv4(address) ? "ipv4" : "ipv6";
    if (prefix === undefined) list.addAddress(address, family);
    else list.addSubnet(address, Number(prefix), family);
  }
  return (address) => {
    // IPv4 clients on a dual-stack socket appear as ::ffff:a.b.c.d.
    const mapped = address.startsWith("::ffff:") ? address.slice(7) : address;
    return list.check(mapped, isIPv4(mapped) ? "ipv4" : "ipv6");
  };
}
