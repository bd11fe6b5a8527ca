/** `npm run charts`: writes charts/avatar-pipeline from the cdk8s app. */
import { fileURLToPath } from 'node:url';
import { CHART_NAME, writeChart } from './helm-chart.js';

writeChart(fileURLToPath(new URL(`../../charts/${CHART_NAME}`, import.meta.url)));
console.log(`charts/${CHART_NAME}`);
