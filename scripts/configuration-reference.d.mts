/** docs/configuration.md as `npm run docs` writes it. */
export function configurationReference(): string;
