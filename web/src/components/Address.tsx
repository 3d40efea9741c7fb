// A base58 address or an id, shortened for a phone's width; the whole of it on hover.
export function Address(props: { of: string }) {
  return <code title={props.of}>{props.of.slice(0, 8)}…</code>;
}
