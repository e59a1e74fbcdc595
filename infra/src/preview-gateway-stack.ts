import { CfnOutput, Duration } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import type { Construct } from 'constructs';
import { addLoadBalancer } from './load-balancer.ts';
import { PARAMS } from './names.ts';
import { BerthServiceStack } from './service-stack.ts';
import type { BerthServiceStackProps } from './service-stack.ts';

/** The port the preview gateway listens on inside its task (BERTH_PREVIEW_PORT). */
export const PREVIEW_GATEWAY_PORT = 8081;
/** Its public base URL, which discovery writes preview URLs with (BERTH_PREVIEW_URL). */
export const PREVIEW_URL_PARAM = '/berth/preview-gateway/url';

/**
 * The preview gateway (issue 19) behind a load balancer of its own: previews are pages a
 * workload wrote, so they get their own host name (their own origin), never discovery's or
 * the console's. Its tasks run in the private subnets, and the workspace tasks accept the dev
 * server's port from its security group and from nothing else.
 */
export class BerthPreviewGatewayStack extends BerthServiceStack {
  readonly loadBalancer: elbv2.ApplicationLoadBalancer;
  readonly targetGroup: elbv2.ApplicationTargetGroup;
  readonly url: string;

  constructor(scope: Construct, id: string, props: BerthServiceStackProps) {
    const settings = props.config.previewGateway;
    super(scope, id, props, {
      service: 'preview-gateway',
      sizing: settings,
      containerPort: PREVIEW_GATEWAY_PORT,
      healthCheckGracePeriod: Duration.seconds(60),
      environment: {
        BERTH_PREVIEW_PORT: String(PREVIEW_GATEWAY_PORT),
        BERTH_HTTP_HOST: '0.0.0.0',
        ...(settings.domain === undefined ? {} : { BERTH_PREVIEW_DOMAIN: settings.domain }),
      },
      secrets: (stack) => ({ BERTH_AUTH_SECRET: stack.authSecret() }),
    });
    const balanced = addLoadBalancer(this, {
      name: 'berth-preview-gateway',
      clients: 'browsers opening previews',
      containerPort: PREVIEW_GATEWAY_PORT,
      settings,
    });
    this.loadBalancer = balanced.loadBalancer;
    this.targetGroup = balanced.targetGroup;
    this.url = balanced.url;
    // Its own load balancer's URL (made after the task definition): Secure cookies over https.
    this.taskDefinition.defaultContainer?.addEnvironment('BERTH_PREVIEW_URL', balanced.url);

    // The dev server's port on the workspace tasks, from the gateway's tasks only.
    const workspaceSecurityGroup = ec2.SecurityGroup.fromSecurityGroupId(
      this,
      'WorkspaceSecurityGroup',
      this.ssmValue(PARAMS.workspaceSecurityGroupId),
      { allowAllOutbound: true },
    );
    workspaceSecurityGroup.connections.allowFrom(
      this.securityGroup,
      ec2.Port.tcp(this.config.workspace.devServerPort),
      'dev servers from the preview gateway',
    );

    new ssm.StringParameter(this, 'UrlParam', {
      parameterName: PREVIEW_URL_PARAM,
      stringValue: balanced.url,
    });
    new CfnOutput(this, 'PreviewGatewayUrl', {
      value: balanced.url,
      description:
        'Where preview URLs point (point a wildcard DNS name here for previewGateway.domain)',
    });
  }
}
