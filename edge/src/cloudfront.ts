// The parts of CloudFront's Lambda@Edge event and answer shapes a viewer-request
// handler uses (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/lambda-event-structure.html).
// Header maps are keyed by the lower-cased name; each entry keeps the name as sent in `key`.

/** One header value; `key` is the name as the viewer spelt it (optional in answers). */
export interface CfHeader {
  key?: string;
  value: string;
}

/** Lower-cased header name to its values, in the order the viewer sent them. */
export type CfHeaders = Record<string, CfHeader[]>;

/** The viewer's request, as the handler receives it and returns it to forward it. */
export interface CfRequest {
  clientIp: string;
  headers: CfHeaders;
  method: string;
  querystring: string;
  uri: string;
  body?: unknown;
}

export interface CfConfig {
  distributionDomainName: string;
  distributionId: string;
  eventType: string;
  requestId: string;
}

export interface CfRequestEvent {
  Records: Array<{ cf: { config: CfConfig; request: CfRequest } }>;
}

/** A response generated at the edge: CloudFront answers the viewer without the origin. */
export interface CfResponse {
  status: string;
  statusDescription: string;
  headers: CfHeaders;
  body: string;
}
