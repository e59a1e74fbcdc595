import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type { BerthServiceStack } from './service-stack.ts';

/** What a load-balanced service's settings say about its load balancer. */
export interface LoadBalancerSettings {
  /** With a certificate the ALB listens on HTTPS (443) and redirects 80; without, HTTP only. */
  certificateArn: string | undefined;
  internetFacing: boolean;
  /** Who may reach the load balancer; the VPC's own range when empty. */
  ingressCidrs: string[];
}

export interface LoadBalancedService {
  loadBalancer: elbv2.ApplicationLoadBalancer;
  targetGroup: elbv2.ApplicationTargetGroup;
  accessLogs: s3.Bucket;
  securityGroup: ec2.SecurityGroup;
  /** `http(s)://<the load balancer's DNS name>`. */
  url: string;
}

/**
 * An Application Load Balancer of its own in front of a service stack's tasks (in the private
 * subnets): its security group open to the configured sources on the listener port only, its
 * access logs, a target group checking `/healthz`, and the only way into the tasks' port.
 * Without a certificate it is internal and speaks HTTP inside the VPC; with one it speaks
 * HTTPS (and may face the internet), redirecting port 80.
 */
export function addLoadBalancer(
  stack: BerthServiceStack,
  options: {
    name: string;
    /** Who the listener serves, for the security group's rule descriptions. */
    clients: string;
    containerPort: number;
    settings: LoadBalancerSettings;
  },
): LoadBalancedService {
  const { settings, containerPort } = options;
  const https = settings.certificateArn !== undefined;
  const listenerPort = https ? 443 : 80;

  const securityGroup = new ec2.SecurityGroup(stack, 'LoadBalancerSecurityGroup', {
    vpc: stack.network.vpc,
    description: `${options.name.replace('-', ' ')} load balancer`,
    allowAllOutbound: false,
  });
  const sources =
    settings.ingressCidrs.length > 0
      ? settings.ingressCidrs.map((cidr) => ec2.Peer.ipv4(cidr))
      : [ec2.Peer.ipv4(stack.config.network.cidr)];
  for (const source of sources) {
    securityGroup.addIngressRule(source, ec2.Port.tcp(listenerPort), options.clients);
    if (https) securityGroup.addIngressRule(source, ec2.Port.tcp(80), 'redirected to HTTPS');
  }

  const accessLogs = new s3.Bucket(stack, 'AccessLogs', {
    encryption: s3.BucketEncryption.S3_MANAGED,
    enforceSSL: true,
    blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
    objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
    lifecycleRules: [{ expiration: Duration.days(stack.config.logRetentionDays) }],
    removalPolicy: RemovalPolicy.RETAIN,
  });

  const loadBalancer = new elbv2.ApplicationLoadBalancer(stack, 'LoadBalancer', {
    loadBalancerName: options.name,
    vpc: stack.network.vpc,
    internetFacing: settings.internetFacing,
    vpcSubnets: {
      subnets: settings.internetFacing
        ? stack.network.publicSubnets()
        : stack.network.privateSubnets,
    },
    securityGroup,
    dropInvalidHeaderFields: true,
  });
  loadBalancer.logAccessLogs(accessLogs, options.name.replace(/^berth-/, ''));

  const targetGroup = new elbv2.ApplicationTargetGroup(stack, 'Targets', {
    vpc: stack.network.vpc,
    port: containerPort,
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
  stack.service.attachToApplicationTargetGroup(targetGroup);
  stack.service.connections.allowFrom(
    securityGroup,
    ec2.Port.tcp(containerPort),
    'from the load balancer',
  );
  securityGroup.addEgressRule(
    stack.securityGroup,
    ec2.Port.tcp(containerPort),
    `to ${options.name.replace(/^berth-/, '')} tasks`,
  );

  if (https) {
    loadBalancer.addListener('Https', {
      port: 443,
      protocol: elbv2.ApplicationProtocol.HTTPS,
      certificates: [elbv2.ListenerCertificate.fromArn(settings.certificateArn!)],
      sslPolicy: elbv2.SslPolicy.RECOMMENDED_TLS,
      defaultTargetGroups: [targetGroup],
      open: false,
    });
    loadBalancer.addListener('HttpRedirect', {
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
    loadBalancer.addListener('Http', {
      port: 80,
      protocol: elbv2.ApplicationProtocol.HTTP,
      defaultTargetGroups: [targetGroup],
      open: false,
    });
  }

  const url = `${https ? 'https' : 'http'}://${loadBalancer.loadBalancerDnsName}`;
  return { loadBalancer, targetGroup, accessLogs, securityGroup, url };
}
