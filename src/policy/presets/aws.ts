import type { Preset } from "./types.js";

// AWS Query-protocol APIs name the operation in an `Action` parameter (query string or form body), JSON
// protocols in `X-Amz-Target`; Keyward reads all three (src/policy/aws-action.ts).
const action = (preset: string, name: string, description: string) => ({
  id: `${preset}.${name}`,
  description,
  match: { awsAction: name },
});

export const awsRds: Preset = {
  id: "aws-rds",
  title: "Amazon RDS API",
  protocol: "http",
  hosts: [/^rds\.[a-z0-9-]+\.amazonaws\.com$/, /^rds-fips\.[a-z0-9-]+\.amazonaws\.com$/],
  operations: [
    action("aws-rds", "DeleteDBSnapshot", "delete a manual DB snapshot"),
    action("aws-rds", "DeleteDBClusterSnapshot", "delete a DB cluster snapshot"),
    action("aws-rds", "DeleteDBInstanceAutomatedBackup", "delete retained automated backups"),
    action("aws-rds", "DeleteDBClusterAutomatedBackup", "delete retained cluster automated backups"),
    action("aws-rds", "DeleteDBInstance", "delete a DB instance (optionally skipping its final snapshot)"),
    action("aws-rds", "DeleteDBCluster", "delete a DB cluster (optionally skipping its final snapshot)"),
  ],
};

export const awsEc2: Preset = {
  id: "aws-ec2",
  title: "Amazon EC2 API (EBS)",
  protocol: "http",
  hosts: ["ec2.amazonaws.com", /^ec2\.[a-z0-9-]+\.amazonaws\.com$/, /^ec2-fips\.[a-z0-9-]+\.amazonaws\.com$/],
  operations: [
    action("aws-ec2", "DeleteSnapshot", "delete an EBS snapshot"),
    action("aws-ec2", "DeleteVolume", "delete an EBS volume"),
    action("aws-ec2", "DeregisterImage", "deregister an AMI (its snapshots become deletable)"),
    action("aws-ec2", "UnlockSnapshot", "remove a snapshot lock"),
  ],
};
