import { CfnOutput, Duration } from 'aws-cdk-lib';
import type * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import type { Construct } from 'constructs';
import { addLoadBalancer } from './load-balancer.ts';
import { NAMES } from './names.ts';
import { PREVIEW_URL_PARAM } from './preview-gateway-stack.ts';
import { BerthServiceStack } from './service-stack.ts';
import type { BerthServiceStackProps } from './service-stack.ts';

/** The port discovery listens on inside its task (BERTH_HTTP_PORT). */
export const DISCOVERY_PORT = 8080;
export const DISCOVERY_URL_PARAM = '/berth/discovery/url';

/**
 * The console's link to a generation's logs: the CloudWatch console on its task's log stream
 * (`{region}` and `{taskId}` filled in per container by discovery). The console encodes a `/`
 * in a fragment path as `$252F`.
 */
const cloudWatchPath = (text: string) => encodeURIComponent(text).replaceAll('%', '$25');
export const WORKSPACE_LOG_URL =
  'https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logsV2:log-groups/log-group/' +
  `${cloudWatchPath(NAMES.workspaceLogGroup)}/log-events/` +
  `${cloudWatchPath(`${NAMES.workspaceLogStreamPrefix}/${NAMES.workspaceContainer}/`)}{taskId}`;

/**
 * The discovery service behind an Application Load Balancer. Without a certificate the
 * load balancer is internal and speaks HTTP inside the VPC; with one it speaks HTTPS (and
 * may face the internet), redirecting port 80.
 */
export class BerthDiscoveryStack extends BerthServiceStack {
  readonly loadBalancer: elbv2.ApplicationLoadBalancer;
  readonly targetGroup: elbv2.ApplicationTargetGroup;
  readonly accessLogs: s3.Bucket;

  constructor(scope: Construct, id: string, props: BerthServiceStackProps) {
    super(scope, id, props, {
      service: 'discovery',
      sizing: props.config.discovery,
      containerPort: DISCOVERY_PORT,
      healthCheckGracePeriod: Duration.seconds(60),
      // Every interface of the task: the load balancer reaches it at the task's own address
      // (awsvpc), never at 127.0.0.1, which is discovery's default for the local stack.
      environment: {
        BERTH_HTTP_PORT: String(DISCOVERY_PORT),
        BERTH_HTTP_HOST: '0.0.0.0',
        BERTH_CONSOLE_LOG_URL: WORKSPACE_LOG_URL,
        ...(props.config.previewGateway.domain === undefined
          ? {}
          : { BERTH_PREVIEW_DOMAIN: props.config.previewGateway.domain }),
      },
      secrets: (stack) => ({ BERTH_AUTH_SECRET: stack.authSecret() }),
    });
    // Preview URLs point at the preview gateway's load balancer (its stack deploys first).
    this.taskDefinition.defaultContainer?.addEnvironment(
      'BERTH_PREVIEW_URL',
      this.ssmValue(PREVIEW_URL_PARAM),
    );
    const balanced = addLoadBalancer(this, {
      name: 'berth-discovery',
      clients: 'clients of discovery',
      containerPort: DISCOVERY_PORT,
      settings: this.config.discovery,
    });
    this.loadBalancer = balanced.loadBalancer;
    this.targetGroup = balanced.targetGroup;
    this.accessLogs = balanced.accessLogs;
    const url = balanced.url;
    new ssm.StringParameter(this, 'UrlParam', {
      parameterName: DISCOVERY_URL_PARAM,
      stringValue: url,
    });
    new CfnOutput(this, 'DiscoveryUrl', {
      value: url,
      description: 'Where the discovery API answers',
    });
  }
}
