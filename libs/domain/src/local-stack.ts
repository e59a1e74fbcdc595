import Type, { type Static } from 'typebox';
import { InvalidArgumentError } from './errors.ts';
import { validator } from './validation.ts';

/** The file, in the local stack's data directory, that tells a client how to reach it. */
export const LOCAL_STACK_FILE = 'stack.json';

/**
 * `<data>/stack.json`: what a client needs to reach a running local stack (written by
 * `npm start` once it is ready, removed when it stops). The local engines accept any
 * credentials, so none are written.
 */
export const LocalStackSchema = Type.Object(
  {
    version: Type.Literal(1),
    pid: Type.Integer({ minimum: 1, description: "the stack's main process" }),
    startedAt: Type.String({ format: 'date-time' }),
    region: Type.String({ minLength: 1 }),
    discoveryUrl: Type.String({ minLength: 1 }),
    runtimeUrl: Type.String({ minLength: 1 }),
    endpoints: Type.Object(
      {
        dynamodb: Type.String({ minLength: 1 }),
        sqs: Type.String({ minLength: 1 }),
        sns: Type.String({ minLength: 1 }),
      },
      { additionalProperties: false },
    ),
    tables: Type.Object(
      {
        containers: Type.String({ minLength: 1 }),
        sessions: Type.String({ minLength: 1 }),
      },
      { additionalProperties: false },
    ),
    lifecycleCommandsUrl: Type.String({ minLength: 1 }),
    topicArn: Type.String({ minLength: 1 }),
    adminTokenPath: Type.String({ minLength: 1, description: 'absolute path' }),
    dataDir: Type.String({ minLength: 1, description: 'absolute path' }),
  },
  { $id: 'LocalStack', additionalProperties: true },
);

export type LocalStack = Static<typeof LocalStackSchema>;

const localStackValidator = validator<LocalStack>(LocalStackSchema);

/** Parses the file's text; throws InvalidArgumentError naming the first bad field. */
export function parseLocalStack(text: string): LocalStack {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new InvalidArgumentError(`${LOCAL_STACK_FILE} is not valid JSON`);
  }
  return localStackValidator.parse(parsed);
}
