/** `npm run synth`: prints the chart's Helm template (what `npm run charts` writes to templates/). */
import { buildApp } from './app.js';
import { renderTemplate } from './helm.js';

process.stdout.write(renderTemplate(buildApp().chart));
