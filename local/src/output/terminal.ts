/** Small helpers for what people read in a terminal: colors (only on a color terminal) and clock times. */

export type Paint = (text: string) => string;

const codes = { bold: 1, red: 31, green: 32, yellow: 33, blue: 34, magenta: 35, cyan: 36, gray: 90 } as const;

export type Palette = Record<keyof typeof codes, Paint>;

export function palette(color: boolean): Palette {
  const entries = Object.entries(codes).map(([name, code]) => [name, color ? (text: string) => `\x1b[${code}m${text}\x1b[0m` : (text: string) => text]);
  return Object.fromEntries(entries) as Palette;
}

/** A terminal that shows colors; `hasColors` honours NO_COLOR, FORCE_COLOR and TERM. */
export function colorsOn(stream: NodeJS.WriteStream): boolean {
  return stream.isTTY === true && stream.hasColors();
}

/** Local wall-clock time to the millisecond (`14:03:07.125`), or the input when it is not a time. */
export function clockTime(time: string | number): string {
  const date = new Date(time);
  if (Number.isNaN(date.getTime())) return String(time);
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}
