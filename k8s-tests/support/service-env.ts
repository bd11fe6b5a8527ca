/**
 * Each service's configuration schema, assembled the way its start.ts (what main.ts runs once
 * tracing is up) assembles it: the argument
 * of its `loadConfig(...)` call (an object of `...shape` spreads, or one shape) is read with the
 * TypeScript parser and every shape is taken from the service's config module, the kit or the
 * vapid package. When start.ts instead calls a `load<Name>Config(...)` of its config module (which
 * checks more than the schema: s3-source's choice of input), the `loadConfig(...)` call is read
 * there, and the tests load through that function. The tests then load the configuration a pod
 * gets exactly as the service would.
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

/** The shape names a module passes to loadConfig, in order; undefined when it calls no loadConfig. */
function findLoadConfigShapes(source: string): string[] | undefined {
  const file = ts.createSourceFile('module.ts', source, ts.ScriptTarget.Latest, true);
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
  return names;
}

/** The shape names start.ts passes to loadConfig, in order. */
export function loadConfigShapes(startSource: string): string[] {
  const names = findLoadConfigShapes(startSource);
  if (!names) throw new Error('no loadConfig(...) call found');
  return names;
}

/** The `load<Name>Config` function start.ts calls, imported from its config module, if any. */
export function ownConfigLoader(startSource: string): string | undefined {
  const file = ts.createSourceFile('start.ts', startSource, ts.ScriptTarget.Latest, true);
  const imported = new Set<string>();
  for (const statement of file.statements) {
    if (!ts.isImportDeclaration(statement) || !ts.isStringLiteral(statement.moduleSpecifier) || statement.moduleSpecifier.text !== './config.js') continue;
    const bindings = statement.importClause?.namedBindings;
    if (bindings && ts.isNamedImports(bindings)) for (const element of bindings.elements) imported.add(element.name.text);
  }
  let found: string | undefined;
  const visit = (node: ts.Node): void => {
    if (!found && ts.isCallExpression(node) && ts.isIdentifier(node.expression) && /^load\w+Config$/.test(node.expression.text) && imported.has(node.expression.text)) {
      found = node.expression.text;
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  return found;
}

/** How a service loads its configuration from an environment, as its start.ts does. */
export interface ServiceConfig {
  shape: z.ZodRawShape;
  /** Throws a ConfigError where the service would stop at start-up. */
  load: (environment: Readonly<Record<string, string | undefined>>) => unknown;
}

/** A service's configuration schema and loader, or undefined while the service has no start.ts yet. */
export async function serviceConfig(service: ServiceName): Promise<ServiceConfig | undefined> {
  const start = sourceOf(service, 'start.ts');
  if (!existsSync(fileURLToPath(start))) return undefined;
  const startSource = readFileSync(start, 'utf8');
  const config = sourceOf(service, 'config.ts');
  const hasConfig = existsSync(fileURLToPath(config));
  const own = hasConfig ? ((await import(config.href)) as Record<string, unknown>) : {};
  const loader = ownConfigLoader(startSource);
  const names = findLoadConfigShapes(startSource) ?? (loader && hasConfig ? findLoadConfigShapes(readFileSync(config, 'utf8')) : undefined);
  if (!names) throw new Error(`services/${service}: no loadConfig(...) call found in start.ts${loader ? ` or in its config module's ${loader}` : ''}`);
  const sources: Record<string, unknown>[] = [own, kit as Record<string, unknown>, vapid as Record<string, unknown>];
  const shape: z.ZodRawShape = {};
  for (const name of names) {
    const found = sources.map((s) => s[name]).find((v) => v !== undefined);
    if (!found || typeof found !== 'object') throw new Error(`services/${service}: cannot find the config shape ${name}`);
    Object.assign(shape, found);
  }
  if (!loader) return { shape, load: (environment) => kit.loadConfig(shape, environment) };
  const load = own[loader];
  if (typeof load !== 'function') throw new Error(`services/${service}: its config module exports no function ${loader}`);
  return { shape, load: (environment) => (load as (e: Readonly<Record<string, string | undefined>>) => unknown)(environment) };
}

/** The shape of a service's configuration, or undefined while the service has no start.ts yet. */
export async function serviceEnvShape(service: ServiceName): Promise<z.ZodRawShape | undefined> {
  return (await serviceConfig(service))?.shape;
}
