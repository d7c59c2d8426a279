// The classic pool task: a decimal integer in, its square out.
const I64_MAX = (1n << 63n) - 1n;
const I64_MIN = -(1n << 63n);

function square(input) {
  const text = new TextDecoder().decode(input).trim();
  if (!/^[+-]?\d+$/.test(text)) throw `not an integer: ${JSON.stringify(text)}`;
  const x = BigInt(text);
  if (x < I64_MIN || x > I64_MAX) throw `${x} is out of the i64 range`;
  const squared = x * x;
  if (squared > I64_MAX) throw `${x} squared overflows i64`;
  return new TextEncoder().encode(squared.toString());
}

export const task = { handle: square };
