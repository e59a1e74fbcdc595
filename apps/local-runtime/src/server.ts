/**
 * The ECS JSON protocol over HTTP (awsJson1_1): `POST /` with
 * `X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Operation>`, so the ECS adapter and the
 * AWS SDK drive the local runtime exactly as they drive ECS.
 */
import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import {
  ECS_TARGET_PREFIX,
  EcsApiError,
  toEcsTask,
  type DescribeTasksRequest,
  type StopTaskRequest,
} from './protocol.ts';
import type { Supervisor } from './supervisor.ts';

const CONTENT_TYPE = 'application/x-amz-json-1.1';

type Operation = (body: Record<string, unknown>) => unknown;

function operations(supervisor: Supervisor): Record<string, Operation> {
  return {
    RunTask: async (body) => {
      const task = await supervisor.runTask(body);
      return { tasks: [toEcsTask(task)], failures: [] };
    },
    DescribeTasks: (body) => {
      const { tasks } = body as DescribeTasksRequest;
      if (!Array.isArray(tasks) || tasks.length === 0 || tasks.length > 100) {
        throw new EcsApiError('InvalidParameterException', 'tasks must list 1 to 100 tasks');
      }
      const found = supervisor.describeTasks(tasks.map(String));
      return { tasks: found.tasks.map(toEcsTask), failures: found.failures };
    },
    StopTask: (body) => {
      const { task, reason } = body as StopTaskRequest;
      if (typeof task !== 'string' || task === '') {
        throw new EcsApiError('InvalidParameterException', 'task is required');
      }
      return { task: toEcsTask(supervisor.stopTask(task, reason)) };
    },
    ListTasks: (body) => {
      const { taskArns, nextToken } = supervisor.listTasks(body);
      return nextToken === undefined ? { taskArns } : { taskArns, nextToken };
    },
  };
}

export function buildServer(supervisor: Supervisor): FastifyInstance {
  const logger: FastifyBaseLogger = supervisor.logger;
  const app = Fastify({
    loggerInstance: logger,
    disableRequestLogging: true,
    genReqId: () => randomUUID(),
  });
  const handlers = operations(supervisor);

  for (const type of [CONTENT_TYPE, 'application/x-amz-json-1.0']) {
    app.addContentTypeParser(type, { parseAs: 'string' }, (_request, body, done) => {
      try {
        done(null, body === '' ? {} : JSON.parse(body as string));
      } catch {
        done(
          new EcsApiError('SerializationException', 'the request body is not valid JSON'),
          undefined,
        );
      }
    });
  }

  app.setErrorHandler((error, request, reply) => {
    const known =
      error instanceof EcsApiError
        ? error
        : new EcsApiError('ServerException', 'the local runtime failed to handle the request', 500);
    if (!(error instanceof EcsApiError)) request.log.error({ err: error }, 'request failed');
    void reply
      .status(known.statusCode)
      .header('content-type', CONTENT_TYPE)
      .header('x-amzn-requestid', request.id)
      .send({ __type: known.type, message: known.message });
  });

  app.post('/', async (request, reply) => {
    const target = request.headers['x-amz-target'];
    const operation =
      typeof target === 'string' && target.startsWith(ECS_TARGET_PREFIX)
        ? target.slice(ECS_TARGET_PREFIX.length)
        : undefined;
    const handler = operation === undefined ? undefined : handlers[operation];
    if (!handler) {
      throw new EcsApiError(
        'UnknownOperationException',
        `the local runtime does not support ${String(target)}`,
      );
    }
    const body = (
      typeof request.body === 'object' && request.body !== null ? request.body : {}
    ) as Record<string, unknown>;
    const answer = await handler(body);
    request.log.debug({ operation }, 'ecs request');
    return reply
      .header('content-type', CONTENT_TYPE)
      .header('x-amzn-requestid', request.id)
      .send(answer);
  });

  return app;
}
