import type { Preset } from "./types.js";

// Operations by AWS's own names, recognised from method, path and query with the table generated from
// AWS's service model (src/policy/s3.ts, src/policy/presets/aws-s3-operations.ts).
const operation = (name: string, operations: string[], description: string) => ({
  id: `aws-s3.${name}`,
  description,
  match: { s3: operations },
});

/** Amazon S3 REST API, path-style (s3.<region>.amazonaws.com/<bucket>) and virtual-hosted (<bucket>.s3.<region>.amazonaws.com). */
export const awsS3: Preset = {
  id: "aws-s3",
  title: "Amazon S3 REST API",
  protocol: "http",
  hosts: [/^([a-z0-9.-]+\.)?s3([.-][a-z0-9-]+)*\.amazonaws\.com$/],
  operations: [
    operation("DeleteObject", ["DeleteObject", "DeleteObjects"], "delete objects or object versions, one (DELETE) or up to 1,000 at once (POST ?delete)"),
    operation("DeleteBucket", ["DeleteBucket"], "delete a bucket"),
    operation("PutBucketLifecycleConfiguration", ["PutBucketLifecycleConfiguration"], "set lifecycle rules (an expiration rule deletes every object)"),
    operation("PutBucketVersioning", ["PutBucketVersioning"], "suspend versioning (overwritten and deleted objects are then gone) or change MFA delete"),
    operation("PutBucketPolicy", ["PutBucketPolicy"], "replace the bucket policy (can open the bucket or lock its owners out)"),
    operation("DeleteBucketPolicy", ["DeleteBucketPolicy"], "delete the bucket policy (removes its deny statements)"),
    operation("PutBucketReplication", ["PutBucketReplication"], "replace the replication configuration (can stop copies to the backup bucket)"),
    operation("DeleteBucketReplication", ["DeleteBucketReplication"], "delete the replication configuration (stops copies to the backup bucket)"),
    operation("PutObjectRetention", ["PutObjectRetention"], "change an object's retention (can shorten its protection)"),
    operation("PutObjectLegalHold", ["PutObjectLegalHold"], "place or remove an object's legal hold"),
  ],
};
