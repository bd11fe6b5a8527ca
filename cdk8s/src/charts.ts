/** `npm run charts`: writes charts/<env> for every environment from the cdk8s app. */
import { fileURLToPath } from 'node:url';
import { environmentNames } from './config.js';
import { writeChart } from './helm-chart.js';

for (const environment of environmentNames) {
  const dir = fileURLToPath(new URL(`../../charts/${environment}`, import.meta.url));
  writeChart(environment, dir);
  console.log(`charts/${environment}`);
}
