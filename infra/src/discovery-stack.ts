import { CfnOutput, Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import type { Construct } from 'constructs';
import { PARAMS } from './names.ts';
import { BerthServiceStack } from './service-stack.ts';
import type { BerthServiceStackProps } from './service-stack.ts';

/** The port discovery listens on inside its task (BERTH_HTTP_PORT). */
export const DISCOVERY_PORT = 8080;
export const DISCOVERY_URL_PARAM = '/berth/discovery/url';

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
      environment: { BERTH_HTTP_PORT: String(DISCOVERY_PORT), BERTH_HTTP_HOST: '0.0.0.0' },
      // Injected by ECS from Secrets Manager at task start: never in the template or the logs.
      secrets: (stack) => ({
        BERTH_AUTH_SECRET: ecs.Secret.fromSecretsManager(
          secretsmanager.Secret.fromSecretCompleteArn(
            stack,
            'AuthSecret',
            stack.ssmValue(PARAMS.authSecretArn),
          ),
        ),
      }),
    });
    const settings = this.config.discovery;
    const https = settings.certificateArn !== undefined;
    const listenerPort = https ? 443 : 80;

    const loadBalancerSecurityGroup = new ec2.SecurityGroup(this, 'LoadBalancerSecurityGroup', {
      vpc: this.network.vpc,
      description: 'berth discovery load balancer',
      allowAllOutbound: false,
    });
    const sources =
      settings.ingressCidrs.length > 0
        ? settings.ingressCidrs.map((cidr) => ec2.Peer.ipv4(cidr))
        : [ec2.Peer.ipv4(this.config.network.cidr)];
    for (const source of sources) {
      loadBalancerSecurityGroup.addIngressRule(
        source,
        ec2.Port.tcp(listenerPort),
        'clients of discovery',
      );
      if (https)
        loadBalancerSecurityGroup.addIngressRule(source, ec2.Port.tcp(80), 'redirected to HTTPS');
    }

    this.accessLogs = new s3.Bucket(this, 'AccessLogs', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ expiration: Duration.days(this.config.logRetentionDays) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.loadBalancer = new elbv2.ApplicationLoadBalancer(this, 'LoadBalancer', {
      loadBalancerName: 'berth-discovery',
      vpc: this.network.vpc,
      internetFacing: settings.internetFacing,
      vpcSubnets: {
        subnets: settings.internetFacing
          ? this.network.publicSubnets()
          : this.network.privateSubnets,
      },
      securityGroup: loadBalancerSecurityGroup,
      dropInvalidHeaderFields: true,
    });
    this.loadBalancer.logAccessLogs(this.accessLogs, 'discovery');

    this.targetGroup = new elbv2.ApplicationTargetGroup(this, 'Targets', {
      vpc: this.network.vpc,
      port: DISCOVERY_PORT,
      protocol: elbv2.ApplicationProtocol.HTTP,
      targetType: elbv2.TargetType.IP,
      deregistrationDelay: Duration.seconds(30),
      // Whether this process can serve, not whether its dependencies answer: a DynamoDB or SNS
      // blip would otherwise fail every task's check at once and ECS would replace them all.
      // Readiness (/readyz) stays for operators and dashboards.
      healthCheck: {
        path: '/healthz',
        healthyHttpCodes: '200',
        interval: Duration.seconds(15),
        timeout: Duration.seconds(5),
        healthyThresholdCount: 2,
        unhealthyThresholdCount: 3,
      },
    });
    this.service.attachToApplicationTargetGroup(this.targetGroup);
    this.service.connections.allowFrom(
      loadBalancerSecurityGroup,
      ec2.Port.tcp(DISCOVERY_PORT),
      'from the load balancer',
    );
    loadBalancerSecurityGroup.addEgressRule(
      this.securityGroup,
      ec2.Port.tcp(DISCOVERY_PORT),
      'to discovery tasks',
    );

    if (https) {
      this.loadBalancer.addListener('Https', {
        port: 443,
        protocol: elbv2.ApplicationProtocol.HTTPS,
        certificates: [elbv2.ListenerCertificate.fromArn(settings.certificateArn!)],
        sslPolicy: elbv2.SslPolicy.RECOMMENDED_TLS,
        defaultTargetGroups: [this.targetGroup],
        open: false,
      });
      this.loadBalancer.addListener('HttpRedirect', {
        port: 80,
        protocol: elbv2.ApplicationProtocol.HTTP,
        open: false,
        defaultAction: elbv2.ListenerAction.redirect({
          protocol: 'HTTPS',
          port: '443',
          permanent: true,
        }),
      });
    } else {
      this.loadBalancer.addListener('Http', {
        port: 80,
        protocol: elbv2.ApplicationProtocol.HTTP,
        defaultTargetGroups: [this.targetGroup],
        open: false,
      });
    }

    const url = `${https ? 'https' : 'http'}://${this.loadBalancer.loadBalancerDnsName}`;
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
