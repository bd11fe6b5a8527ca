/**
 * Each service's configuration schema, assembled the way its main.ts assembles it: the argument
 * of its `loadConfig(...)` call (an object of `...shape` spreads, or one shape) is read with the
 * TypeScript parser and every shape is taken from the service's config module, the kit or the
 * vapid package. The tests then load the configuration a pod gets exactly as the service would.
 * Config modules are imported directly: package entry points also load their runtime (moderate's
 * loads TensorFlow), which the tests do not need.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import * as kit from '@avatar-pipeline/kit';
import type { ServiceName } from '@avatar-pipeline/kit';
import * as vapid from '@avatar-pipeline/vapid';
import type { z } from 'zod';

const sourceOf = (service: ServiceName, file: string) => new URL(`../../services/${service}/src/${file}`, import.meta.url);

/** The shape names main.ts passes to loadConfig, in order. */
export function loadConfigShapes(mainSource: string): string[] {
  const file = ts.createSourceFile('main.ts', mainSource, ts.ScriptTarget.Latest, true);
  let names: string[] | undefined;
  const visit = (node: ts.Node): void => {
    if (!names && ts.isCallExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'loadConfig') {
      const [arg] = node.arguments;
      if (arg && ts.isIdentifier(arg)) names = [arg.text];
      else if (arg && ts.isObjectLiteralExpression(arg)) {
        names = arg.properties.map((p) => {
          if (ts.isSpreadAssignment(p) && ts.isIdentifier(p.expression)) return p.expression.text;
          throw new Error(`loadConfig argument has a member that is not a ...shape spread: ${p.getText()}`);
        });
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  if (!names) throw new Error('no loadConfig(...) call found');
  return names;
}

/** The shape of a service's configuration, or undefined while the service has no main.ts yet. */
export async function serviceEnvShape(service: ServiceName): Promise<z.ZodRawShape | undefined> {
  const main = sourceOf(service, 'main.ts');
  if (!existsSync(fileURLToPath(main))) return undefined;
  const config = sourceOf(service, 'config.ts');
  const own = existsSync(fileURLToPath(config)) ? ((await import(config.href)) as Record<string, unknown>) : {};
  const sources: Record<string, unknown>[] = [own, kit as Record<string, unknown>, vapid as Record<string, unknown>];
  const shape: z.ZodRawShape = {};
  for (const name of loadConfigShapes(readFileSync(main, 'utf8'))) {
    const found = sources.map((s) => s[name]).find((v) => v !== undefined);
    if (!found || typeof found !== 'object') throw new Error(`services/${service}: cannot find the config shape ${name}`);
    Object.assign(shape, found);
  }
  return shape;
}
