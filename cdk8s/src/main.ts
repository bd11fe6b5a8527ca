/** The cdk8s app entry (`cdk8s synth` runs it): synthesizes the environment named by AVATAR_ENV. */
import { buildApp, environmentFromEnv } from './app.js';

buildApp(environmentFromEnv()).app.synth();
