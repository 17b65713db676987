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
    {
      id: "aws-rds.DisableAutomatedBackups",
      description: "ModifyDBInstance with BackupRetentionPeriod 0: turn off the instance's automated backups and point-in-time recovery",
      match: { awsAction: "ModifyDBInstance", zeroed: "BackupRetentionPeriod" },
    },
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

// Calls whose answer is a new credential: with it the agent acts outside Keyward, beyond its grant, its
// token's life and any revocation, and redaction cannot know the secret to hold back (it is new).
export const awsSts: Preset = {
  id: "aws-sts",
  title: "AWS Security Token Service",
  protocol: "http",
  hosts: ["sts.amazonaws.com", /^sts\.[a-z0-9-]+\.amazonaws\.com$/, /^sts-fips\.[a-z0-9-]+\.amazonaws\.com$/],
  operations: [
    action("aws-sts", "AssumeRole", "mint temporary AWS credentials for a role, usable outside Keyward"),
    action("aws-sts", "AssumeRoleWithSAML", "mint temporary AWS credentials from a SAML assertion"),
    action("aws-sts", "AssumeRoleWithWebIdentity", "mint temporary AWS credentials from an OIDC token"),
    action("aws-sts", "AssumeRoot", "mint temporary root credentials for a member account"),
    action("aws-sts", "GetSessionToken", "mint temporary AWS credentials for the caller, usable outside Keyward"),
    action("aws-sts", "GetFederationToken", "mint temporary AWS credentials for a federated user"),
  ],
};

export const awsIam: Preset = {
  id: "aws-iam",
  title: "AWS Identity and Access Management",
  protocol: "http",
  hosts: ["iam.amazonaws.com", "iam-fips.amazonaws.com", /^iam\.[a-z0-9-]+\.amazonaws\.com$/],
  operations: [
    action("aws-iam", "CreateAccessKey", "create a long-lived access key, usable outside Keyward"),
    action("aws-iam", "CreateLoginProfile", "give a user a console password"),
    action("aws-iam", "UpdateLoginProfile", "change a user's console password"),
    action("aws-iam", "CreateServiceSpecificCredential", "create a password for CodeCommit, Keyspaces or Bedrock"),
    action("aws-iam", "ResetServiceSpecificCredential", "reset such a password, returning the new one"),
  ],
};
