/** A small Dockerfile reader: stages and their instructions (heredoc bodies kept with theirs). */

export interface Instruction {
  keyword: string;
  args: string;
  /** Body of a heredoc (`<<'EOF' ... EOF`), if the instruction has one. */
  heredoc?: string;
}

export interface Stage {
  name: string;
  from: string;
  instructions: Instruction[];
}

export interface Dockerfile {
  /** ARGs before the first FROM, with their defaults. */
  globalArgs: Record<string, string | undefined>;
  stages: Stage[];
}

export function parseDockerfile(text: string): Dockerfile {
  const lines = text.split('\n');
  const instructions: Instruction[] = [];
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i] ?? '';
    if (/^\s*(#|$)/.test(line)) continue;
    while (line.endsWith('\\') && i + 1 < lines.length) line = `${line.slice(0, -1)} ${lines[++i] ?? ''}`;
    const match = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!match) throw new Error(`line ${i + 1}: not an instruction: ${line}`);
    const instruction: Instruction = { keyword: (match[1] ?? '').toUpperCase(), args: (match[2] ?? '').trim() };
    const heredoc = /<<-?'?"?(\w+)'?"?/.exec(instruction.args);
    if (heredoc?.[1]) {
      const body: string[] = [];
      while (++i < lines.length && lines[i] !== heredoc[1]) body.push(lines[i] ?? '');
      instruction.heredoc = body.join('\n');
    }
    instructions.push(instruction);
  }
  const result: Dockerfile = { globalArgs: {}, stages: [] };
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(instruction.args);
      result.stages.push({ from: m?.[1] ?? '', name: m?.[2] ?? String(result.stages.length), instructions: [] });
    } else if (result.stages.length === 0) {
      if (instruction.keyword === 'ARG') {
        const [name, value] = instruction.args.split('=', 2);
        result.globalArgs[name ?? ''] = value;
      }
    } else {
      result.stages.at(-1)?.instructions.push(instruction);
    }
  }
  return result;
}

/** The stages a target is built from, target first (following FROM, not COPY --from). */
export function lineage(dockerfile: Dockerfile, target: string): Stage[] {
  const chain: Stage[] = [];
  let stage = dockerfile.stages.find((s) => s.name === target);
  while (stage) {
    chain.push(stage);
    const parent: string = stage.from;
    stage = dockerfile.stages.find((s) => s.name === parent);
  }
  return chain;
}
