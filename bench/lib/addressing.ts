// The test bed's address plan, in one place. Every address lives only inside the test
// namespaces (the root namespace never sees them), so parallel test beds can reuse the plan.
//
//   path p (0-based)  subnet 192.168.(77+p).0/24, bridge br<p> in the bridge namespace
//   node i (1-based)  192.168.(77+p).i on eth<p>, MAC 02:48:00:00:0<p>:<i>
//   client station    192.168.77.250 (path 0 only: clients reach the service there)
//   gateway           192.168.77.254 on the client station: the utility-check target
//   watcher of node i 192.168.77.(200+i)
//   service addresses 192.168.77.100, .101, ... (VIPs; path 0)

export const PREFIX_LEN = 24;

export function subnetBase(path: number): string {
  return `192.168.${77 + path}`;
}

export function nodeAddress(index: number, path: number): string {
  if (index < 1 || index > 99) throw new Error(`node index ${index} out of range 1..99`);
  return `${subnetBase(path)}.${index}`;
}

const hex2 = (n: number): string => n.toString(16).padStart(2, '0');

/** Fixed MACs, so a rebooted node keeps its MAC and watchers' static neighbour entries stay valid. */
export function nodeMac(index: number, path: number): string {
  return `02:48:00:00:${hex2(path)}:${hex2(index)}`;
}

export function stationMac(n: number): string {
  return `02:48:01:00:00:${hex2(n)}`;
}

export const CLIENT_ADDRESS = `${subnetBase(0)}.250`;
export const GATEWAY_ADDRESS = `${subnetBase(0)}.254`;

export function watcherAddress(nodeIndex: number): string {
  return `${subnetBase(0)}.${200 + nodeIndex}`;
}

/** The k-th service address (k = 0 → 192.168.77.100). */
export function vipAddress(k: number): string {
  if (k < 0 || k > 99) throw new Error(`VIP index ${k} out of range 0..99`);
  return `${subnetBase(0)}.${100 + k}`;
}
