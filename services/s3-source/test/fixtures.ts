/**
 * Notifications as each producer sends them. AWS: the record layout of the S3 documentation's
 * "Event message structure" example. MinIO: its webhook target's body (`event.Log`: EventName,
 * Key, Records), with the key `url.QueryEscape`d as MinIO does and the response elements it sets.
 */
export const UPLOAD_ID = '0196a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a7b';

export function awsRecord(overrides: Record<string, unknown> = {}) {
  return {
    eventVersion: '2.1',
    eventSource: 'aws:s3',
    awsRegion: 'us-west-2',
    eventTime: '2025-05-04T10:11:12.345Z',
    eventName: 'ObjectCreated:Post',
    userIdentity: { principalId: 'AWS:AIDAJDPLRKLG7UEXAMPLE' },
    requestParameters: { sourceIPAddress: '203.0.113.7' },
    responseElements: {
      'x-amz-request-id': 'C3D13FE58DE4C810',
      'x-amz-id-2': 'FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD',
    },
    s3: {
      s3SchemaVersion: '1.0',
      configurationId: 'avatar-uploads',
      bucket: { name: 'avatars-prod', ownerIdentity: { principalId: 'A3NL1KOZZKExample' }, arn: 'arn:aws:s3:::avatars-prod' },
      // `player+1` as S3 encodes it: form-style, so a literal '+' is %2B.
      object: { key: `uploads/player%2B1/${UPLOAD_ID}`, size: 48213, eTag: 'd41d8cd98f00b204e9800998ecf8427e', sequencer: '0055AED6DCD90281E5' },
    },
    ...overrides,
  };
}

export function awsNotification(...records: unknown[]) {
  return { Records: records.length > 0 ? records : [awsRecord()] };
}

export function minioBody(key = `uploads/player-1/${UPLOAD_ID}`, eventName = 's3:ObjectCreated:Post') {
  return {
    EventName: eventName,
    Key: `avatars/${key}`,
    Records: [
      {
        eventVersion: '2.0',
        eventSource: 'minio:s3',
        awsRegion: '',
        eventTime: '2025-05-04T10:11:12.345Z',
        eventName,
        userIdentity: { principalId: 'minio-root' },
        requestParameters: { principalId: 'minio-root', region: '', sourceIPAddress: '10.244.0.1' },
        responseElements: {
          'x-amz-id-2': 'dd9025bab4ad464b049177c95eb6ebf374d3b3fd1af9251148b658df7ac2e3e8',
          'x-amz-request-id': '18BE12ED5938E79E',
          'x-minio-deployment-id': '8a3c7d1e-4b5f-4c2a-9e8d-1f2a3b4c5d6e',
          'x-minio-origin-endpoint': 'http://10.244.0.12:9000',
        },
        s3: {
          s3SchemaVersion: '1.0',
          configurationId: 'Config',
          bucket: { name: 'avatars', ownerIdentity: { principalId: 'minio-root' }, arn: 'arn:aws:s3:::avatars' },
          object: {
            key: encodeURIComponent(key).replace(/%20/g, '+'),
            size: 48213,
            eTag: '5d41402abc4b2a76b9719d911017c592',
            contentType: 'image/png',
            userMetadata: { 'content-type': 'image/png' },
            sequencer: '18BE12ED5A3C1F27',
          },
        },
        source: { host: '10.244.0.1', port: '', userAgent: 'aws-sdk-js/3.1175.0' },
      },
    ],
  };
}

/** SNS -> SQS without raw message delivery. */
export function snsEnvelope(message: unknown) {
  return {
    Type: 'Notification',
    MessageId: '22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324',
    TopicArn: 'arn:aws:sns:us-west-2:123456789012:avatar-uploads',
    Subject: 'Amazon S3 Notification',
    Message: JSON.stringify(message),
    Timestamp: '2025-05-04T10:11:12.456Z',
    SignatureVersion: '1',
    Signature: 'EXAMPLE',
    SigningCertURL: 'https://sns.us-west-2.amazonaws.com/SimpleNotificationService-EXAMPLE.pem',
    UnsubscribeURL: 'https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=EXAMPLE',
  };
}

/** What S3 sends once when a notification configuration is saved. */
export const s3TestEvent = {
  Service: 'Amazon S3',
  Event: 's3:TestEvent',
  Time: '2025-05-04T10:00:00.000Z',
  Bucket: 'avatars-prod',
  RequestId: '5582815E1AEA5ADF',
  HostId: '8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE',
};
