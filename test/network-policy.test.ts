import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { blockedRange, resolvePublicAddress } from "../src/service/network-policy.js";

/** Literal addresses only: nothing here needs a network. */
const PUBLIC = [
  "8.8.8.8", "1.1.1.1", "93.184.215.14", "151.101.1.69",
  "2606:4700:4700::1111", "2001:4860:4860::8888",
  "::ffff:8.8.8.8", "::ffff:808:808", // IPv4-mapped public
  "64:ff9b::808:808", // NAT64 of a public address
  "2002:808:808::1", // 6to4 relay of a public address
];

const BLOCKED: [string, string][] = [
  ["127.0.0.1", "loopback"], ["127.255.255.254", "loopback"], ["0.0.0.0", "unspecified"],
  ["10.1.2.3", "private"], ["172.16.0.1", "private"], ["192.168.1.1", "private"],
  ["169.254.169.254", "linkLocal"], ["100.64.0.1", "carrierGradeNat"], ["192.0.0.1", "reserved"],
  ["198.18.0.1", "reserved"], ["224.0.0.1", "multicast"], ["255.255.255.255", "broadcast"], ["240.0.0.1", "reserved"],
  ["::", "unspecified"], ["::1", "loopback"], ["fe80::1", "linkLocal"], ["fc00::1", "uniqueLocal"], ["fd12:3456::1", "uniqueLocal"],
  ["fec0::1", "deprecatedSiteLocal"], ["ff02::1", "multicast"], ["2001:db8::1", "reserved"],
  ["::ffff:127.0.0.1", "loopback"], ["::ffff:7f00:1", "loopback"], ["::ffff:169.254.169.254", "linkLocal"],
  ["::7f00:1", "loopback"], ["::127.0.0.1", "loopback"], ["::a00:1", "private"], // IPv4-compatible
  ["::ffff:0:7f00:1", "loopback"], // IPv4-translated (RFC 6145)
  ["64:ff9b::7f00:1", "loopback"], ["64:ff9b::a9fe:a9fe", "linkLocal"], ["64:ff9b:1::1", "rfc6052"], // NAT64
  ["2002:7f00:1::1", "loopback"], ["2002:a00:1::", "private"], ["2002:a9fe:a9fe::1", "linkLocal"], // 6to4
  ["2001::1", "teredo"],
];

describe("address policy", () => {
  it("lets public addresses of both families through, also when IPv6 carries a public IPv4 address", () => {
    for (const address of PUBLIC) assert.equal(blockedRange(address), undefined, address);
  });

  it("refuses every special-purpose address, also when an IPv6 form wraps a blocked IPv4 address", () => {
    for (const [address, range] of BLOCKED) assert.equal(blockedRange(address), range, address);
  });

  it("judges URL hosts the same way, with the allow-list as the only way past it", async () => {
    for (const host of ["8.8.8.8", "[2606:4700:4700::1111]", "[::ffff:8.8.8.8]"]) {
      assert.equal((await resolvePublicAddress(new URL(`http://${host}/x.jpg`), [], "image_url")).address.length > 0, true, host);
    }
    for (const host of ["127.0.0.1", "0x7f.1", "[::7f00:1]", "[64:ff9b::7f00:1]", "[2002:7f00:1::]", "[fec0::1]", "[::ffff:a9fe:a9fe]"]) {
      await assert.rejects(resolvePublicAddress(new URL(`http://${host}/x.jpg`), [], "image_url"), /not a public address/, host);
    }
    assert.equal((await resolvePublicAddress(new URL("http://127.0.0.1:9/x"), ["127.0.0.1:9"], "url")).address, "127.0.0.1");
    await assert.rejects(resolvePublicAddress(new URL("http://127.0.0.1:10/x"), ["127.0.0.1:9"], "url"), /not a public address/);
  });
});
