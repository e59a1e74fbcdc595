import { buildApp } from './app.ts';

// `cdk synth` / `cdk deploy` run this (infra/cdk.json); the CLI passes context and outdir.
buildApp({ env: process.env }).app.synth();
