//! The estate as a plan: networks, hosts and connections. The writers turn
//! it into the providers' inventory and flow-log formats.

use std::collections::BTreeSet;

use crate::rng::Rng;
use crate::time::SLOTS;

pub(crate) const AWS_ACCOUNT: &str = "418295730164";
pub(crate) const AWS_REGION: &str = "us-east-1";
pub(crate) const AZURE_SUBSCRIPTION: &str = "6c1f4b2e-9a7d-4c3e-8f15-2b7a9d0e4c61";
pub(crate) const AZURE_LOCATION: &str = "westeurope";
pub(crate) const GCP_REGION: &str = "us-central1";

/// The payment gateway's public address (TEST-NET-3: documentation range,
/// routable-looking and never anyone's real host).
pub(crate) const PAYMENT_GATEWAY: &str = "203.0.113.45";
/// An internal address in the CDE VPC's range that no inventory lists: a
/// forgotten jump box.
pub(crate) const UNKNOWN_HOST: &str = "10.20.7.41";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Cloud {
    Aws,
    Azure,
    Gcp,
    OnPrem,
}

/// What the estate intends a host to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Cde,
    Web,
    Corp,
    Monitoring,
    Untagged,
}

/// One subnet (and its VPC / VNet / network).
#[derive(Debug, Clone)]
pub(crate) struct Net {
    pub(crate) cloud: Cloud,
    /// AWS account, Azure subscription, GCP project, on-premise site.
    pub(crate) account: String,
    /// AWS `vpc-…`, Azure VNet name, GCP network name.
    pub(crate) vpc_id: String,
    pub(crate) vpc_name: String,
    /// AWS `subnet-…`, Azure subnet name, GCP subnetwork name.
    pub(crate) subnet_id: String,
    pub(crate) subnet_name: String,
    /// The first three octets of the /24.
    pub(crate) prefix: String,
    /// AWS/GCP zone (`us-east-1a`, `us-central1-a`), Azure zone (`1`).
    pub(crate) zone: String,
    /// AWS zone id (`use1-az4`).
    pub(crate) zone_id: String,
    /// Azure resource group.
    pub(crate) resource_group: String,
    /// Azure NSG; AWS security group id.
    pub(crate) nsg: String,
    used: BTreeSet<u8>,
    next: u8,
}

/// How a host appears in its provider's inventory.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    /// EC2 instance with its primary ENI.
    Ec2 { instance_type: &'static str },
    /// The requester-managed ENI of an RDS instance: the flows are its; the
    /// DB instance itself (`db_id`) has no address in AWS Config.
    RdsEni { db_id: String, engine: &'static str, engine_version: &'static str, port: u16 },
    /// A NAT gateway's ENI.
    NatEni { nat_id: String },
    /// Azure VM and its NIC (`nic_id`, ARM id); flows map to the NIC, which the VM owns.
    AzureVm { nic_id: String, size: &'static str, os: &'static str },
    /// GCE instance.
    Gce { machine_type: &'static str, network_tags: Vec<&'static str> },
    /// Cloud SQL (native JSON: Cloud Asset Inventory is mapped for compute instances only).
    CloudSql { version: &'static str, tier: &'static str },
    /// On-premise host (native JSON).
    OnPrem { model: &'static str },
}

#[derive(Debug, Clone)]
pub(crate) struct Host {
    pub(crate) name: String,
    pub(crate) role: Role,
    pub(crate) net: usize,
    pub(crate) ip: String,
    pub(crate) public_ip: Option<String>,
    /// The resource id the flows of this host are attributed to.
    pub(crate) id: String,
    /// AWS ENI id, Azure MAC (`000D3A…`); empty elsewhere.
    pub(crate) iface: String,
    /// AWS instance id (`-` for an ENI of a managed service), GCP VM name.
    pub(crate) instance_id: String,
    pub(crate) tags: Vec<(&'static str, String)>,
    pub(crate) kind: Kind,
}

impl Host {
    /// Whether this host's side of a flow is in a flow log.
    pub(crate) fn logged(&self) -> bool {
        !matches!(self.kind, Kind::CloudSql { .. } | Kind::OnPrem { .. })
    }

    /// Whether it runs a Prometheus node exporter (CDE servers).
    pub(crate) fn exporter(&self) -> bool {
        self.role == Role::Cde && matches!(self.kind, Kind::Ec2 { .. } | Kind::AzureVm { .. } | Kind::Gce { .. })
    }
}

/// One end of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum End {
    Host(usize),
    /// An address in no inventory (public, or the unknown internal host).
    Addr(String),
}

/// One connection in one 10-minute slot.
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    pub(crate) src: End,
    pub(crate) dst: End,
    pub(crate) src_port: u16,
    pub(crate) dst_port: u16,
    /// IANA protocol: 6 TCP, 17 UDP.
    pub(crate) protocol: u8,
    pub(crate) accept: bool,
    pub(crate) slot: u32,
    /// Offset in the slot of the first packet, seconds.
    pub(crate) offset: u64,
    /// Seconds the connection lasted (within the slot).
    pub(crate) duration: u64,
    pub(crate) packets: u64,
    pub(crate) bytes: u64,
    pub(crate) reply_packets: u64,
    pub(crate) reply_bytes: u64,
}

#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) nets: Vec<Net>,
    pub(crate) hosts: Vec<Host>,
    pub(crate) conns: Vec<Conn>,
    pub(crate) violator: usize,
    pub(crate) violated: usize,
    pub(crate) monitoring: usize,
}

impl Plan {
    pub(crate) fn ip(&self, end: &End) -> String {
        match end {
            End::Host(h) => self.hosts[*h].ip.clone(),
            End::Addr(a) => a.clone(),
        }
    }

    pub(crate) fn host(&self, end: &End) -> Option<&Host> {
        match end {
            End::Host(h) => Some(&self.hosts[*h]),
            End::Addr(_) => None,
        }
    }

    pub(crate) fn net_of(&self, h: &Host) -> &Net {
        &self.nets[h.net]
    }
}

struct Builder {
    rng: Rng,
    nets: Vec<Net>,
    hosts: Vec<Host>,
    conns: Vec<Conn>,
}

/// Internet addresses of the corporate systems' peers (SaaS, package
/// mirrors, code hosting), all from the documentation ranges.
const INTERNET: &[&str] = &[
    "198.51.100.10",
    "198.51.100.23",
    "198.51.100.47",
    "198.51.100.80",
    "198.51.100.132",
    "198.51.100.201",
    "192.0.2.15",
    "192.0.2.66",
    "192.0.2.140",
    "192.0.2.222",
];

fn tags(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

impl Builder {
    #[allow(clippy::too_many_arguments)]
    fn net(
        &mut self,
        cloud: Cloud,
        account: &str,
        vpc: (&str, &str),
        subnet: (&str, &str),
        prefix: &str,
        zone: (&str, &str),
        resource_group: &str,
        nsg: &str,
    ) -> usize {
        self.nets.push(Net {
            cloud,
            account: account.to_owned(),
            vpc_id: vpc.0.to_owned(),
            vpc_name: vpc.1.to_owned(),
            subnet_id: subnet.0.to_owned(),
            subnet_name: subnet.1.to_owned(),
            prefix: prefix.to_owned(),
            zone: zone.0.to_owned(),
            zone_id: zone.1.to_owned(),
            resource_group: resource_group.to_owned(),
            nsg: nsg.to_owned(),
            used: BTreeSet::new(),
            next: if cloud == Cloud::Gcp { 2 } else { 4 },
        });
        self.nets.len() - 1
    }

    /// A free host address in `net`: AWS hands out random ones, Azure and
    /// GCP the next free one.
    fn address(&mut self, net: usize) -> String {
        let cloud = self.nets[net].cloud;
        let octet = if cloud == Cloud::Aws {
            loop {
                let o = self.rng.range(10, 250) as u8;
                if !self.nets[net].used.contains(&o) && format!("{}.{o}", self.nets[net].prefix) != UNKNOWN_HOST {
                    break o;
                }
            }
        } else {
            let n = &mut self.nets[net];
            while n.used.contains(&n.next) {
                n.next += 1;
            }
            n.next
        };
        self.nets[net].used.insert(octet);
        format!("{}.{octet}", self.nets[net].prefix)
    }

    fn add(&mut self, name: &str, role: Role, net: usize, kind: Kind, tags: Vec<(&'static str, String)>) -> usize {
        let ip = self.address(net);
        let n = &self.nets[net];
        let (id, iface, instance_id) = match (&kind, n.cloud) {
            (Kind::Ec2 { .. }, _) => {
                let instance = format!("i-0{}", self.rng.hex(16));
                (instance.clone(), format!("eni-0{}", self.rng.hex(16)), instance)
            }
            (Kind::RdsEni { .. } | Kind::NatEni { .. }, _) => {
                let eni = format!("eni-0{}", self.rng.hex(16));
                (eni.clone(), eni, "-".to_owned())
            }
            (Kind::AzureVm { .. }, _) => {
                let id = format!(
                    "/subscriptions/{}/resourcegroups/{}/providers/microsoft.compute/virtualmachines/{name}",
                    n.account, n.resource_group
                );
                let mac = format!("000D3A{:02X}{:02X}{:02X}", self.rng.byte(), self.rng.byte(), self.rng.byte());
                (id, mac, name.to_owned())
            }
            (Kind::Gce { .. }, _) => (
                format!("//compute.googleapis.com/projects/{}/zones/{}/instances/{name}", n.account, n.zone),
                String::new(),
                name.to_owned(),
            ),
            (Kind::CloudSql { .. }, _) => (format!("{}:{GCP_REGION}:{name}", n.account), String::new(), String::new()),
            (Kind::OnPrem { .. }, _) => (format!("cmdb://{}/hosts/{name}", n.account), String::new(), String::new()),
        };
        self.hosts.push(Host {
            name: name.to_owned(),
            role,
            net,
            ip,
            public_ip: None,
            id,
            iface,
            instance_id,
            tags,
            kind,
        });
        self.hosts.len() - 1
    }

    /// One connection per slot in `slots`.
    fn connect(&mut self, src: End, dst: End, dst_port: u16, accept: bool, slots: &[u32]) {
        for &slot in slots {
            let (packets, bytes, reply_packets, reply_bytes) = if !accept {
                let p = self.rng.range(1, 3);
                (p, p * 60, 0, 0)
            } else {
                let (lo, hi) = match dst_port {
                    443 | 8443 => (8, 400),
                    5432 | 1433 | 5022 => (20, 2_000),
                    9100 => (6, 14),
                    445 | 8081 => (40, 5_000),
                    _ => (4, 120),
                };
                let p = self.rng.range(lo, hi);
                let r = self.rng.range(lo, hi);
                (p, p * self.rng.range(80, 900), r, r * self.rng.range(200, 1_400))
            };
            let offset = self.rng.below(480);
            let duration = self.rng.range(1, 600 - offset - 1);
            self.conns.push(Conn {
                src: src.clone(),
                dst: dst.clone(),
                src_port: self.rng.range(32_768, 60_999) as u16,
                dst_port,
                protocol: 6,
                accept,
                slot,
                offset,
                duration,
                packets,
                bytes,
                reply_packets,
                reply_bytes,
            });
        }
    }

    /// Slots in which a periodic job ran: each with probability `percent`.
    fn some_slots(&mut self, percent: u64) -> Vec<u32> {
        (0..SLOTS).filter(|_| self.rng.chance(percent)).collect()
    }

    fn pick_from(&mut self, pool: &[usize]) -> usize {
        *self.rng.pick(pool)
    }

    /// `n` distinct members of `pool`.
    fn sample(&mut self, pool: &[usize], n: usize) -> Vec<usize> {
        let mut left = pool.to_vec();
        let mut out = Vec::new();
        while out.len() < n && !left.is_empty() {
            let i = self.rng.index(left.len());
            out.push(left.remove(i));
        }
        out
    }
}

const ALL: [u32; 6] = [0, 1, 2, 3, 4, 5];

/// Builds the estate's plan from `seed`.
pub(crate) fn plan(seed: u64) -> Plan {
    let mut b = Builder { rng: Rng::new(seed), nets: Vec::new(), hosts: Vec::new(), conns: Vec::new() };
    // The parts draw from one random sequence, in this order.
    let aws = aws_systems(&mut b);
    let azure = azure_systems(&mut b);
    let gcp = gcp_systems(&mut b);
    let hsms = on_premise(&mut b);
    web_traffic(&mut b, [(&aws.web, &aws.pay_api), (&azure.web, &azure.pay_api), (&gcp.storefront, &gcp.checkout)]);
    cde_traffic(&mut b, &aws, &azure, &gcp, hsms);
    // The monitoring system scrapes every CDE server's node exporter (VPN
    // and interconnect to Azure and GCP).
    let exporters: Vec<usize> = (0..b.hosts.len()).filter(|&i| b.hosts[i].exporter()).collect();
    for e in exporters {
        b.connect(End::Host(aws.monitoring), End::Host(e), 9100, true, &ALL);
    }
    corporate_traffic(&mut b, &aws, &azure, &gcp);
    refused_and_stray_traffic(&mut b, &aws, &azure);
    unlogged_vpc(&mut b);
    Plan {
        nets: b.nets,
        hosts: b.hosts,
        conns: b.conns,
        violator: aws.jenkins,
        violated: aws.db_primary,
        monitoring: aws.monitoring,
    }
}

/// An AWS id: `prefix` and 17 hex digits (`vpc-0…`, `subnet-0…`, `sg-0…`).
fn aws_id(r: &mut Builder, prefix: &str) -> String {
    format!("{prefix}-0{}", r.rng.hex(16))
}

fn cde_tags(data: &str, app: &str) -> Vec<(&'static str, String)> {
    tags(&[("pci-scope", "cde"), ("pci-data", data), ("env", "prod"), ("team", "payments"), ("app", app)])
}

fn web_tags() -> Vec<(&'static str, String)> {
    tags(&[("env", "prod"), ("team", "storefront"), ("app", "web")])
}

fn corp_tags(team: &str, app: &str) -> Vec<(&'static str, String)> {
    tags(&[("pci-scope", "out-of-scope"), ("env", "prod"), ("team", team), ("app", app)])
}

const AZ_A: (&str, &str) = ("us-east-1a", "use1-az4");
const AZ_B: (&str, &str) = ("us-east-1b", "use1-az6");

/// The AWS systems the traffic names.
struct Aws {
    pay_api: Vec<usize>,
    tokenization: Vec<usize>,
    db_primary: usize,
    db_replica: usize,
    vault_db: usize,
    web: Vec<usize>,
    jenkins: usize,
    gitlab: usize,
    ldap: [usize; 2],
    wiki: usize,
    jira: usize,
    artifactory: usize,
    mail: usize,
    /// The named corporate servers (Jenkins, GitLab, LDAP, ...), in order.
    servers: Vec<usize>,
    agents: Vec<usize>,
    monitoring: usize,
    untagged: Vec<usize>,
}

fn aws_systems(r: &mut Builder) -> Aws {
    let (cde_vpc, web_vpc, corp_vpc, shared_vpc) =
        (aws_id(r, "vpc"), aws_id(r, "vpc"), aws_id(r, "vpc"), aws_id(r, "vpc"));
    let a = AWS_ACCOUNT;
    let (s1, g1) = (aws_id(r, "subnet"), aws_id(r, "sg"));
    let cde_app_a = r.net(Cloud::Aws, a, (&cde_vpc, "cde-prod"), (&s1, "cde-app-1a"), "10.20.1", AZ_A, "", &g1);
    let s = aws_id(r, "subnet");
    let cde_app_b = r.net(Cloud::Aws, a, (&cde_vpc, "cde-prod"), (&s, "cde-app-1b"), "10.20.2", AZ_B, "", &g1);
    let (s, g) = (aws_id(r, "subnet"), aws_id(r, "sg"));
    let cde_data_a = r.net(Cloud::Aws, a, (&cde_vpc, "cde-prod"), (&s, "cde-data-1a"), "10.20.10", AZ_A, "", &g);
    let s = aws_id(r, "subnet");
    let cde_data_b = r.net(Cloud::Aws, a, (&cde_vpc, "cde-prod"), (&s, "cde-data-1b"), "10.20.11", AZ_B, "", &g);
    let (s, g) = (aws_id(r, "subnet"), aws_id(r, "sg"));
    let web_a = r.net(Cloud::Aws, a, (&web_vpc, "web-prod"), (&s, "web-1a"), "10.10.1", AZ_A, "", &g);
    let s = aws_id(r, "subnet");
    let web_b = r.net(Cloud::Aws, a, (&web_vpc, "web-prod"), (&s, "web-1b"), "10.10.2", AZ_B, "", &g);
    let (s, g) = (aws_id(r, "subnet"), aws_id(r, "sg"));
    let corp_a = r.net(Cloud::Aws, a, (&corp_vpc, "corp"), (&s, "corp-1a"), "10.30.1", AZ_A, "", &g);
    let (s, g) = (aws_id(r, "subnet"), aws_id(r, "sg"));
    let corp_ci = r.net(Cloud::Aws, a, (&corp_vpc, "corp"), (&s, "corp-ci-1b"), "10.30.8", AZ_B, "", &g);
    let (s, g) = (aws_id(r, "subnet"), aws_id(r, "sg"));
    let corp_pub = r.net(Cloud::Aws, a, (&corp_vpc, "corp"), (&s, "corp-public-1a"), "10.30.0", AZ_A, "", &g);
    let (s, g) = (aws_id(r, "subnet"), aws_id(r, "sg"));
    let mon = r.net(Cloud::Aws, a, (&shared_vpc, "shared-services"), (&s, "mon-1a"), "10.40.1", AZ_A, "", &g);

    let mut pay_api = Vec::new();
    for i in 1..=6 {
        let net = if i % 2 == 1 { cde_app_a } else { cde_app_b };
        let kind = Kind::Ec2 { instance_type: "m6i.xlarge" };
        pay_api.push(r.add(&format!("pay-api-{i}"), Role::Cde, net, kind, cde_tags("processes-cardholder", "pay-api")));
    }
    let mut tokenization = Vec::new();
    for i in 1..=3 {
        let net = if i % 2 == 1 { cde_app_a } else { cde_app_b };
        // Classified by data only: no pci-scope tag.
        let t = tags(&[("pci-data", "stores-cardholder"), ("env", "prod"), ("team", "payments"), ("app", "tokenizer")]);
        tokenization.push(r.add(
            &format!("tokenizer-{i}"),
            Role::Cde,
            net,
            Kind::Ec2 { instance_type: "c6i.large" },
            t,
        ));
    }
    let rds = |r: &mut Builder, name: &str, net: usize| {
        let db_id = format!("db-{}", r.rng.upper_alnum(26));
        let kind = Kind::RdsEni { db_id, engine: "postgres", engine_version: "16.4", port: 5432 };
        r.add(name, Role::Cde, net, kind, cde_tags("stores-cardholder", "payments-db"))
    };
    let db_primary = rds(r, "payments-db-primary", cde_data_a);
    let db_replica = rds(r, "payments-db-replica", cde_data_b);
    let vault_db = rds(r, "tokenvault-db", cde_data_a);

    let mut web = Vec::new();
    for i in 1..=r.rng.range(30, 36) {
        let net = if i % 2 == 1 { web_a } else { web_b };
        let h = r.add(&format!("web-{i}"), Role::Web, net, Kind::Ec2 { instance_type: "c6i.large" }, web_tags());
        let ip = format!("54.{}.{}.{}", r.rng.range(144, 236), r.rng.range(1, 254), r.rng.range(1, 254));
        r.hosts[h].public_ip = Some(ip);
        web.push(h);
    }

    let corp_named = |r: &mut Builder, name: &str, net: usize, ty: &'static str, team: &str| {
        r.add(name, Role::Corp, net, Kind::Ec2 { instance_type: ty }, corp_tags(team, name))
    };
    let jenkins = corp_named(r, "jenkins", corp_ci, "m6i.2xlarge", "platform");
    let gitlab = corp_named(r, "gitlab", corp_a, "m6i.2xlarge", "platform");
    let ldap1 = corp_named(r, "ldap-1", corp_a, "t3.large", "it");
    let ldap2 = corp_named(r, "ldap-2", corp_a, "t3.large", "it");
    let wiki = corp_named(r, "wiki", corp_a, "t3.large", "it");
    let jira = corp_named(r, "jira", corp_a, "m6i.large", "it");
    let artifactory = corp_named(r, "artifactory", corp_a, "m6i.xlarge", "platform");
    let mail = corp_named(r, "mail-relay", corp_a, "t3.medium", "it");
    let vpn = corp_named(r, "vpn-gw", corp_a, "c6i.large", "it");
    let mut agents = Vec::new();
    for i in 1..=r.rng.range(22, 28) {
        let kind = Kind::Ec2 { instance_type: "c6i.2xlarge" };
        agents.push(r.add(&format!("build-agent-{i:02}"), Role::Corp, corp_ci, kind, corp_tags("platform", "ci")));
    }
    let nat_id = format!("nat-0{}", r.rng.hex(16));
    let nat = r.add("corp-nat", Role::Untagged, corp_pub, Kind::NatEni { nat_id }, Vec::new());
    let ip = format!("3.{}.{}.{}", r.rng.range(208, 239), r.rng.range(1, 254), r.rng.range(1, 254));
    r.hosts[nat].public_ip = Some(ip);

    let monitoring = r.add(
        "grafana-mon",
        Role::Monitoring,
        mon,
        Kind::Ec2 { instance_type: "m6i.large" },
        tags(&[("pci-scope", "connected-cde"), ("env", "prod"), ("team", "sre"), ("app", "monitoring")]),
    );
    let mut untagged = Vec::new();
    for (name, net) in [("test-instance-1", web_a), ("tmp-migration-01", corp_a), ("packer-builder", corp_ci)] {
        untagged.push(r.add(name, Role::Untagged, net, Kind::Ec2 { instance_type: "t3.micro" }, Vec::new()));
    }
    Aws {
        pay_api,
        tokenization,
        db_primary,
        db_replica,
        vault_db,
        web,
        jenkins,
        gitlab,
        ldap: [ldap1, ldap2],
        wiki,
        jira,
        artifactory,
        mail,
        servers: vec![jenkins, gitlab, ldap1, ldap2, wiki, jira, artifactory, mail, vpn],
        agents,
        monitoring,
        untagged,
    }
}

/// The Azure systems the traffic names.
struct Azure {
    pay_api: Vec<usize>,
    sqlvm: [usize; 2],
    web: Vec<usize>,
    ad: [usize; 2],
    fileservers: [usize; 2],
    intranet: usize,
    hr: usize,
    sccm: usize,
    /// The named corporate servers (domain controllers, file servers, ...), in order.
    servers: Vec<usize>,
    vdi: Vec<usize>,
    untagged: Vec<usize>,
}

fn azure_systems(r: &mut Builder) -> Azure {
    let z = AZURE_SUBSCRIPTION;
    let az_net = |r: &mut Builder, rg: &str, vnet: &str, snet: &str, prefix: &str, zone: &str, nsg: &str| {
        let id = format!(
            "/subscriptions/{z}/resourceGroups/{rg}/providers/Microsoft.Network/virtualNetworks/{vnet}/subnets/{snet}"
        );
        r.net(Cloud::Azure, z, (vnet, vnet), (&id, snet), prefix, (zone, ""), rg, nsg)
    };
    let pay_app = az_net(r, "rg-payments-prod", "vnet-payments-prod", "snet-app", "10.50.1", "1", "nsg-payments-app");
    let pay_data =
        az_net(r, "rg-payments-prod", "vnet-payments-prod", "snet-data", "10.50.2", "2", "nsg-payments-data");
    let web_net = az_net(r, "rg-web-prod", "vnet-web-prod", "snet-web", "10.60.1", "1", "nsg-web-prod");
    let servers_net = az_net(r, "rg-corp-it", "vnet-corp-hub", "snet-servers", "10.70.1", "1", "nsg-corp-servers");
    let vdi_net = az_net(r, "rg-corp-it", "vnet-corp-hub", "snet-vdi", "10.70.4", "1", "nsg-corp-vdi");
    let vm = |size: &'static str, os: &'static str| Kind::AzureVm { nic_id: String::new(), size, os };

    let mut pay_api = Vec::new();
    for i in 1..=4 {
        pay_api.push(r.add(
            &format!("pay-api-eu-{i}"),
            Role::Cde,
            pay_app,
            vm("Standard_D4s_v5", "Linux"),
            cde_tags("processes-cardholder", "pay-api"),
        ));
    }
    let sqlvm = |r: &mut Builder, name: &str| {
        r.add(name, Role::Cde, pay_data, vm("Standard_E8s_v5", "Windows"), cde_tags("stores-cardholder", "mssql"))
    };
    let sqlvm = [sqlvm(r, "sqlvm-payments-1"), sqlvm(r, "sqlvm-payments-2")];
    let mut web = Vec::new();
    for i in 1..=r.rng.range(10, 14) {
        web.push(r.add(&format!("web-eu-{i}"), Role::Web, web_net, vm("Standard_D2s_v5", "Linux"), web_tags()));
    }
    let server = |r: &mut Builder, name: &str, os: &'static str| {
        r.add(name, Role::Corp, servers_net, vm("Standard_D4s_v5", os), corp_tags("it", name))
    };
    let ad = [server(r, "ad-dc-1", "Windows"), server(r, "ad-dc-2", "Windows")];
    let fileservers = [server(r, "fileserver-1", "Windows"), server(r, "fileserver-2", "Windows")];
    let intranet = server(r, "intranet-1", "Linux");
    let hr = server(r, "hr-app-1", "Windows");
    let sccm = server(r, "sccm-1", "Windows");
    let print = server(r, "print-1", "Windows");
    let mut vdi = Vec::new();
    for i in 1..=r.rng.range(30, 36) {
        let kind = vm("Standard_D4s_v5", "Windows");
        vdi.push(r.add(&format!("vdi-{i:02}"), Role::Corp, vdi_net, kind, corp_tags("it", "vdi")));
    }
    let mut untagged = Vec::new();
    for name in ["vm-test-jdoe", "dev-sandbox-3"] {
        untagged.push(r.add(name, Role::Untagged, web_net, vm("Standard_B2s", "Linux"), Vec::new()));
    }
    // The NIC ids, now that the names are known.
    for h in &mut r.hosts {
        if let Kind::AzureVm { nic_id, .. } = &mut h.kind {
            let n = &r.nets[h.net];
            *nic_id = format!(
                "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/networkInterfaces/{}-nic01",
                n.account, n.resource_group, h.name
            );
        }
    }
    Azure {
        pay_api,
        sqlvm,
        web,
        ad,
        fileservers,
        intranet,
        hr,
        sccm,
        servers: vec![ad[0], ad[1], fileservers[0], fileservers[1], intranet, hr, sccm, print],
        vdi,
        untagged,
    }
}

/// The GCP systems the traffic names.
struct Gcp {
    checkout: Vec<usize>,
    ledger: usize,
    storefront: Vec<usize>,
    airflow: usize,
    bi: usize,
    jupyter: usize,
    workers: Vec<usize>,
    untagged: Vec<usize>,
}

fn gcp_systems(r: &mut Builder) -> Gcp {
    let gnet = |r: &mut Builder, project: &str, vpc: &str, subnet: &str, prefix: &str, zone: &str| {
        r.net(Cloud::Gcp, project, (vpc, vpc), (subnet, subnet), prefix, (zone, ""), "", "")
    };
    let g_app = gnet(r, "acme-payments-prod", "payments-vpc", "payments-app-usc1", "10.128.10", "us-central1-a");
    let g_sql = gnet(r, "acme-payments-prod", "payments-vpc", "cloudsql-psa", "10.118.0", "us-central1-b");
    let g_web = gnet(r, "acme-storefront-prod", "storefront-vpc", "storefront-usc1", "10.132.0", "us-central1-b");
    let g_corp = gnet(r, "acme-corp-data", "corp-data-vpc", "analytics-usc1", "10.140.4", "us-central1-c");
    let gce =
        |ty: &'static str, net_tags: &[&'static str]| Kind::Gce { machine_type: ty, network_tags: net_tags.to_vec() };
    let mut checkout = Vec::new();
    for i in 1..=4 {
        checkout.push(r.add(
            &format!("checkout-api-{i}"),
            Role::Cde,
            g_app,
            gce("n2-standard-4", &["checkout-api", "allow-health-checks"]),
            cde_tags("processes-cardholder", "checkout-api"),
        ));
    }
    let ledger = r.add(
        "payments-ledger",
        Role::Cde,
        g_sql,
        Kind::CloudSql { version: "POSTGRES_16", tier: "db-custom-4-16384" },
        cde_tags("stores-cardholder", "ledger"),
    );
    let mut storefront = Vec::new();
    for i in 1..=r.rng.range(12, 16) {
        storefront.push(r.add(
            &format!("storefront-{i}"),
            Role::Web,
            g_web,
            gce("e2-standard-2", &["storefront", "allow-health-checks"]),
            web_tags(),
        ));
    }
    let corp_gce = |app: &'static str| gce("n2-standard-8", &[app]);
    let airflow = r.add("airflow-1", Role::Corp, g_corp, corp_gce("airflow"), corp_tags("data", "airflow"));
    let bi = r.add("bi-reporting-1", Role::Corp, g_corp, corp_gce("bi"), corp_tags("data", "bi-reporting"));
    let jupyter = r.add("jupyter-1", Role::Corp, g_corp, corp_gce("jupyter"), corp_tags("data", "jupyter"));
    let mut workers = Vec::new();
    for i in 1..=r.rng.range(28, 34) {
        workers.push(r.add(
            &format!("analytics-worker-{i:02}"),
            Role::Corp,
            g_corp,
            corp_gce("analytics"),
            corp_tags("data", "analytics"),
        ));
    }
    let mut untagged = Vec::new();
    for name in ["gke-migration-test", "scratch-vm-7"] {
        untagged.push(r.add(name, Role::Untagged, g_web, gce("e2-small", &[]), Vec::new()));
    }
    Gcp { checkout, ledger, storefront, airflow, bi, jupyter, workers, untagged }
}

/// The data centre: two HSMs in the CDE and an uninventoried legacy box;
/// the HSMs.
fn on_premise(r: &mut Builder) -> [usize; 2] {
    let dc_net = |r: &mut Builder, vlan: &str, prefix: &str| {
        r.net(Cloud::OnPrem, "fra-dc1", ("dc-core", "dc-core"), (vlan, vlan), prefix, ("", ""), "", "")
    };
    let dc = dc_net(r, "vlan-110", "172.16.10");
    let hsm_tags = || tags(&[("pci-scope", "cde"), ("env", "prod"), ("team", "payments"), ("app", "hsm")]);
    let hsm = |r: &mut Builder, name: &str| {
        r.add(name, Role::Cde, dc, Kind::OnPrem { model: "Thales payShield 10K" }, hsm_tags())
    };
    let hsms = [hsm(r, "payshield-hsm-1"), hsm(r, "payshield-hsm-2")];
    let legacy_net = dc_net(r, "vlan-220", "172.16.20");
    let kind = Kind::OnPrem { model: "HPE ProLiant DL380 Gen10" };
    r.add("legacy-batch-01", Role::Untagged, legacy_net, kind, Vec::new());
    hsms
}

fn client(r: &mut Builder) -> End {
    End::Addr(format!("198.51.100.{}", r.rng.range(2, 254)))
}

fn internet(r: &mut Builder) -> End {
    End::Addr((*r.rng.pick(INTERNET)).to_owned())
}

fn gateway() -> End {
    End::Addr(PAYMENT_GATEWAY.to_owned())
}

/// The web tiers call the payment APIs (443) and take customers' requests;
/// internet scanners knock on SSH / RDP, denied at the web tier (GCP logs
/// allowed traffic only: not there).
fn web_traffic(r: &mut Builder, tiers: [(&Vec<usize>, &Vec<usize>); 3]) {
    let h = End::Host;
    for (tier, (webs, apis)) in tiers.into_iter().enumerate() {
        for &w in webs {
            for api in r.sample(apis, 2) {
                r.connect(h(w), h(api), 443, true, &ALL);
            }
            for slot in 0..SLOTS {
                let c = client(r);
                r.connect(c, h(w), 443, true, &[slot]);
            }
        }
        for _ in 0..if tier < 2 { 4 } else { 0 } {
            let w = r.pick_from(webs);
            let c = client(r);
            let slot = r.rng.below(u64::from(SLOTS)) as u32;
            let port = *r.rng.pick(&[22, 3389, 23]);
            r.connect(c, h(w), port, false, &[slot]);
        }
    }
}

/// Inside the CDE: the payment APIs to their databases, tokenizers, HSMs
/// and the payment gateway; database replication.
fn cde_traffic(r: &mut Builder, aws: &Aws, azure: &Azure, gcp: &Gcp, hsms: [usize; 2]) {
    let h = End::Host;
    for &api in &aws.pay_api {
        r.connect(h(api), h(aws.db_primary), 5432, true, &ALL);
        let t = r.pick_from(&aws.tokenization);
        r.connect(h(api), h(t), 8443, true, &ALL);
        let hsm = if r.rng.chance(50) { hsms[0] } else { hsms[1] };
        let slots = r.some_slots(60);
        r.connect(h(api), h(hsm), 1500, true, &slots);
        r.connect(h(api), gateway(), 443, true, &ALL);
    }
    for &t in &aws.tokenization {
        r.connect(h(t), h(aws.vault_db), 5432, true, &ALL);
    }
    r.connect(h(aws.db_primary), h(aws.db_replica), 5432, true, &ALL);
    for &api in &azure.pay_api {
        r.connect(h(api), h(azure.sqlvm[0]), 1433, true, &ALL);
        r.connect(h(api), gateway(), 443, true, &ALL);
    }
    r.connect(h(azure.sqlvm[0]), h(azure.sqlvm[1]), 5022, true, &ALL);
    for &api in &gcp.checkout {
        r.connect(h(api), h(gcp.ledger), 5432, true, &ALL);
        r.connect(h(api), gateway(), 443, true, &ALL);
    }
}

/// Corporate systems among themselves and to the internet.
fn corporate_traffic(r: &mut Builder, aws: &Aws, azure: &Azure, gcp: &Gcp) {
    let h = End::Host;
    let [ldap1, ldap2] = aws.ldap;
    for &c in aws.servers.iter().chain(&aws.agents) {
        let ldap = if r.rng.chance(50) { ldap1 } else { ldap2 };
        if c != ldap1 && c != ldap2 {
            let slots = r.some_slots(50);
            r.connect(h(c), h(ldap), 636, true, &slots);
        }
        let slots = r.some_slots(40);
        let peer = internet(r);
        r.connect(h(c), peer, 443, true, &slots);
    }
    for &agent in &aws.agents {
        r.connect(h(agent), h(aws.jenkins), 50000, true, &ALL);
        let slots = r.some_slots(50);
        r.connect(h(agent), h(aws.artifactory), 8081, true, &slots);
        let slots = r.some_slots(40);
        r.connect(h(agent), h(aws.gitlab), 443, true, &slots);
    }
    r.connect(h(aws.jenkins), h(aws.gitlab), 22, true, &ALL);
    for &c in &[aws.wiki, aws.jira, aws.gitlab] {
        r.connect(h(c), h(aws.mail), 25, true, &[1, 4]);
    }
    let [ad1, ad2] = azure.ad;
    for &c in azure.servers.iter().chain(&azure.vdi) {
        if c != ad1 && c != ad2 {
            let dc = if r.rng.chance(50) { ad1 } else { ad2 };
            r.connect(h(c), h(dc), 389, true, &ALL);
            let slots = r.some_slots(30);
            r.connect(h(c), h(dc), 88, true, &slots);
        }
        let slots = r.some_slots(30);
        let peer = internet(r);
        r.connect(h(c), peer, 443, true, &slots);
    }
    for &d in &azure.vdi {
        let fs = if r.rng.chance(50) { azure.fileservers[0] } else { azure.fileservers[1] };
        let slots = r.some_slots(50);
        r.connect(h(d), h(fs), 445, true, &slots);
        let slots = r.some_slots(30);
        r.connect(h(d), h(azure.intranet), 443, true, &slots);
    }
    // Developers on VDI reach GitLab in AWS over the site-to-site VPN.
    for d in r.sample(&azure.vdi, 5) {
        let slots = r.some_slots(50);
        r.connect(h(d), h(aws.gitlab), 443, true, &slots);
    }
    r.connect(h(azure.sccm), h(azure.fileservers[0]), 445, true, &ALL);
    for &w in &gcp.workers {
        r.connect(h(gcp.airflow), h(w), 8793, true, &ALL);
        let slots = r.some_slots(30);
        let peer = internet(r);
        r.connect(h(w), peer, 443, true, &slots);
    }
    for w in r.sample(&gcp.workers, 6) {
        r.connect(h(gcp.bi), h(w), 8080, true, &[0, 2, 4]);
    }
    r.connect(h(gcp.jupyter), h(gcp.bi), 443, true, &[1, 3, 5]);
    for &u in aws.untagged.iter().chain(&azure.untagged).chain(&gcp.untagged) {
        let slots = r.some_slots(40);
        let peer = internet(r);
        r.connect(h(u), peer, 443, true, &slots);
    }
}

/// Corporate attempts at the CDE, refused (network ACL / NSG outbound deny
/// on the corporate subnets: they must connect nothing); the one
/// misconfigured path (Jenkins' CI subnet lacks the deny rule and its
/// database migration job reaches the payments database); the one unknown
/// internal host (a jump box nobody inventoried, SSHing into a payment API
/// server).
fn refused_and_stray_traffic(r: &mut Builder, aws: &Aws, azure: &Azure) {
    let h = End::Host;
    let (vdi, fs1) = (azure.vdi[3], azure.fileservers[0]);
    for (src, dst, port) in [
        (aws.wiki, aws.db_primary, 5432),
        (aws.gitlab, aws.pay_api[1], 22),
        (aws.jira, aws.tokenization[0], 8443),
        (aws.ldap[0], aws.db_replica, 5432),
        (vdi, azure.sqlvm[0], 1433),
        (fs1, azure.pay_api[1], 445),
        (azure.hr, azure.sqlvm[1], 1433),
    ] {
        let slots = r.some_slots(50);
        let slots = if slots.is_empty() { vec![2] } else { slots };
        r.connect(h(src), h(dst), port, false, &slots);
    }
    r.connect(h(aws.jenkins), h(aws.db_primary), 5432, true, &[1, 4]);
    r.connect(End::Addr(UNKNOWN_HOST.to_owned()), h(aws.pay_api[2]), 22, true, &[2, 3, 5]);
}

/// A VPC whose flow logs were never enabled (added last, so that the rest
/// of the estate keeps its ids): its archive server is declared out of
/// scope, which nothing observed can confirm.
fn unlogged_vpc(r: &mut Builder) {
    let (v, s, g) = (aws_id(r, "vpc"), aws_id(r, "subnet"), aws_id(r, "sg"));
    let archive = r.net(Cloud::Aws, AWS_ACCOUNT, (&v, "archive"), (&s, "archive-1a"), "10.35.1", AZ_A, "", &g);
    r.add("archive-1", Role::Corp, archive, Kind::Ec2 { instance_type: "t3.medium" }, corp_tags("it", "archive"));
}
