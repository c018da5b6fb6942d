package statefold.peer;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.ReplicaInfo;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;

/**
 * The Kafka Streams peer of statefold's fold benchmark (docs/performance.md, "Kafka Streams peer").
 *
 * <pre>
 *   java -cp 'target/classes:target/lib/*' statefold.peer.KStreamsPeer --brokers 127.0.0.1:19292 \
 *       --topic statefold.bench.X --records 200000 [--passes 2] [--state-dir DIR]
 * </pre>
 *
 * Each pass runs a fresh KafkaStreams instance (new application.id, so a fresh consumer group, fresh changelog
 * topics and a fresh state directory) over the whole topic with exactly_once_v2 and one stream thread. The clock
 * stops once the pass's committed offsets cover every record of the topic, i.e. when the last transaction holding
 * the last record's store writes is committed, as statefold's benchmark stops once the last batch is in its store.
 * Pass 1 runs in a cold JVM, later passes in the same, warm JVM. Each pass prints one JSON line on stdout.
 */
public final class KStreamsPeer {
  private KStreamsPeer() {}

  static final class Args {
    String brokers;
    String topic;
    long records = -1;
    int passes = 2;
    Path stateDir;
    boolean keepInternalTopics = false;
    long timeoutSeconds = 900;
    long brokerPid = 0;        // when given, the broker's CPU time over each pass is printed too
    long clockTicks = 100;     // getconf CLK_TCK: the unit of /proc/PID/stat's utime and stime
    boolean deleteSourceTopic = false;
  }

  public static void main(String[] argv) throws Exception {
    Args a = parse(argv);
    if (a.stateDir == null) a.stateDir = Files.createTempDirectory("statefold-kstreams-peer-");
    String runId = Long.toString(System.currentTimeMillis());
    int failures = 0;
    for (int pass = 1; pass <= a.passes; ++pass) {
      String appId = "statefold-kstreams-peer-" + runId + "-" + pass;
      try {
        System.out.println(runPass(a, appId, pass));
        System.out.flush();
      } catch (Exception e) {
        System.err.println("kstreams-peer: pass " + pass + ": " + e);
        ++failures;
      }
    }
    if (a.deleteSourceTopic) {
      Properties adminProps = new Properties();
      adminProps.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, a.brokers);
      try (Admin admin = Admin.create(adminProps)) {
        admin.deleteTopics(Set.of(a.topic)).all().get();
      }
    }
    // Kafka's client threads are daemon threads or closed; exit explicitly all the same.
    System.exit(failures == 0 ? 0 : 1);
  }

  static String runPass(Args a, String appId, int pass) throws Exception {
    Path dir = a.stateDir.resolve(appId);
    Files.createDirectories(dir);

    Properties p = new Properties();
    p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
    p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, a.brokers);
    p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
    p.put(StreamsConfig.STATE_DIR_CONFIG, dir.toString());
    p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);  // a single-node broker
    p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.ByteArraySerde.class);
    p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.ByteArraySerde.class);
    p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
    // Everything else is Kafka Streams' default: commit.interval.ms 100 under exactly_once_v2, a 10 MB record
    // cache, RocksDB with its Streams defaults, changelogs on every store.

    FoldProcessor.Counters counters = new FoldProcessor.Counters(a.records);
    Topology topology = FoldProcessor.topology(a.topic, counters);

    com.sun.management.OperatingSystemMXBean os =
        (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
    CountDownLatch failed = new CountDownLatch(1);
    final Throwable[] failure = new Throwable[1];

    Properties adminProps = new Properties();
    adminProps.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, a.brokers);
    try (Admin admin = Admin.create(adminProps)) {
      double brokerStart = brokerCpuSeconds(a);
      long cpuStart = os.getProcessCpuTime();
      long wallStart = System.nanoTime();
      KafkaStreams streams = new KafkaStreams(topology, p);
      streams.setUncaughtExceptionHandler(e -> {
        failure[0] = e;
        failed.countDown();
        return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
      });
      long committedAt;
      try {
        streams.start();
        long deadline = wallStart + TimeUnit.SECONDS.toNanos(a.timeoutSeconds);
        // Wait for the last record to be processed, then for the transaction that holds it to be committed.
        while (!counters.allProcessed.await(10, TimeUnit.MILLISECONDS)) {
          if (failed.getCount() == 0) throw new IllegalStateException("stream thread failed: " + failure[0]);
          if (System.nanoTime() > deadline) {
            throw new IllegalStateException("timed out after processing " + counters.processed + " of "
                                            + a.records + " records");
          }
        }
        while (committedRecords(admin, appId) < a.records) {
          if (failed.getCount() == 0) throw new IllegalStateException("stream thread failed: " + failure[0]);
          if (System.nanoTime() > deadline) throw new IllegalStateException("timed out waiting for the commit");
          Thread.sleep(2);
        }
        committedAt = System.nanoTime();
      } finally {
        streams.close(Duration.ofSeconds(60));
      }
      long cpuEnd = os.getProcessCpuTime();  // figures up to the commit; closing is left out of the rate
      double brokerCpu = brokerCpuSeconds(a) - brokerStart;
      double cpuToCommit = cpuAt(cpuStart, cpuEnd);

      long stateBytes = directoryBytes(dir);
      long changelogBytes = changelogBytes(admin, appId);
      if (!a.keepInternalTopics) deleteInternalTopics(admin, appId);
      streams.cleanUp();
      deleteDirectory(dir);

      double steady = (counters.lastNanos - counters.firstNanos) / 1e9;
      double toCommit = (committedAt - counters.firstNanos) / 1e9;
      double wall = (committedAt - wallStart) / 1e9;
      // As statefold's benchmark: the first record starts the clock, so it is not counted in the rate, and the
      // rate runs to the commit of the last record.
      double eventsPerS = (a.records - 1) / toCommit;
      return String.format(java.util.Locale.ROOT,
          "{\"peer\":\"kafka-streams\",\"pass\":%d,\"jvm\":\"%s\",\"records\":%d,\"events_per_s\":%.0f,"
              + "\"first_to_last_processed_s\":%.3f,\"first_to_commit_s\":%.3f,\"wall_s\":%.3f,\"cpu_s\":%.3f,"
              + "\"cpu_us_per_event\":%.2f,\"broker_cpu_us_per_event\":%s,\"accepted\":%d,\"duplicates\":%d,\"rejected\":%d,"
              + "\"state_dir_bytes\":%d,\"changelog_bytes\":%d}",
          pass, pass == 1 ? "cold" : "warm", a.records, eventsPerS, steady, toCommit, wall, cpuToCommit,
          cpuToCommit * 1e6 / a.records,
          a.brokerPid > 0 ? String.format(java.util.Locale.ROOT, "%.2f", brokerCpu * 1e6 / a.records) : "null",
          counters.accepted, counters.duplicates, counters.rejected, stateBytes,
          changelogBytes);
    }
  }

  // utime + stime of the broker process (fields 14 and 15 of /proc/PID/stat), in seconds; 0 when not asked.
  static double brokerCpuSeconds(Args a) throws IOException {
    if (a.brokerPid <= 0) return 0;
    String stat = Files.readString(Path.of("/proc/" + a.brokerPid + "/stat"));
    String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");  // f[0] is field 3 (state)
    return (Long.parseLong(f[11]) + Long.parseLong(f[12])) / (double) a.clockTicks;
  }

  static double cpuAt(long startNs, long endNs) { return (endNs - startNs) / 1e9; }

  static long committedRecords(Admin admin, String group) throws Exception {
    Map<TopicPartition, OffsetAndMetadata> offsets =
        admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
    long sum = 0;
    for (OffsetAndMetadata o : offsets.values()) {
      if (o != null) sum += o.offset();
    }
    return sum;
  }

  static Set<String> internalTopics(Admin admin, String appId) throws Exception {
    return admin.listTopics().names().get().stream()
        .filter(t -> t.startsWith(appId + "-"))
        .collect(Collectors.toSet());
  }

  // Bytes the broker holds for the pass's changelog topics (one replica: a single-node broker).
  static long changelogBytes(Admin admin, String appId) throws Exception {
    Set<String> topics = internalTopics(admin, appId);
    long sum = 0;
    var nodes = admin.describeCluster().nodes().get();
    List<Integer> ids = new ArrayList<>();
    nodes.forEach(n -> ids.add(n.id()));
    for (Map<String, LogDirDescription> dirs : admin.describeLogDirs(ids).allDescriptions().get().values()) {
      for (LogDirDescription d : dirs.values()) {
        for (Map.Entry<TopicPartition, ReplicaInfo> r : d.replicaInfos().entrySet()) {
          if (topics.contains(r.getKey().topic())) sum += r.getValue().size();
        }
      }
    }
    return sum;
  }

  static void deleteInternalTopics(Admin admin, String appId) throws Exception {
    Set<String> topics = internalTopics(admin, appId);
    if (!topics.isEmpty()) admin.deleteTopics(topics).all().get();
  }

  static long directoryBytes(Path dir) throws IOException {
    try (Stream<Path> files = Files.walk(dir)) {
      return files.filter(Files::isRegularFile).mapToLong(f -> {
        try {
          return Files.size(f);
        } catch (IOException e) {
          return 0;  // a file RocksDB removed while we walked
        }
      }).sum();
    }
  }

  static void deleteDirectory(Path dir) throws IOException {
    if (!Files.exists(dir)) return;
    try (Stream<Path> files = Files.walk(dir)) {
      files.sorted(java.util.Comparator.reverseOrder()).forEach(f -> {
        try {
          Files.deleteIfExists(f);
        } catch (IOException e) {
          throw new UncheckedIOException(e);
        }
      });
    }
  }

  static Args parse(String[] argv) {
    Args a = new Args();
    for (int i = 0; i < argv.length; ++i) {
      String opt = argv[i];
      if (opt.equals("-h") || opt.equals("--help")) usage(0);
      boolean flag = opt.equals("--keep-internal-topics") || opt.equals("--delete-source-topic");
      if (i + 1 >= argv.length && !flag) usage(2);
      switch (opt) {
        case "--brokers" -> a.brokers = argv[++i];
        case "--topic" -> a.topic = argv[++i];
        case "--records" -> a.records = Long.parseLong(argv[++i]);
        case "--passes" -> a.passes = Integer.parseInt(argv[++i]);
        case "--state-dir" -> a.stateDir = Path.of(argv[++i]);
        case "--timeout-s" -> a.timeoutSeconds = Long.parseLong(argv[++i]);
        case "--keep-internal-topics" -> a.keepInternalTopics = true;
        case "--delete-source-topic" -> a.deleteSourceTopic = true;
        case "--broker-pid" -> a.brokerPid = Long.parseLong(argv[++i]);
        case "--clock-ticks" -> a.clockTicks = Long.parseLong(argv[++i]);
        default -> {
          System.err.println("kstreams-peer: unknown option " + opt);
          usage(2);
        }
      }
    }
    if (a.brokers == null || a.topic == null || a.records < 2 || a.passes < 1) usage(2);
    return a;
  }

  static void usage(int status) {
    (status == 0 ? System.out : System.err).println(
        "Usage: KStreamsPeer --brokers B --topic T --records N [--passes 2] [--state-dir DIR] [--timeout-s 900]\n"
        + "                    [--keep-internal-topics] [--delete-source-topic] [--broker-pid PID --clock-ticks HZ]\n"
        + "Folds topic T (N records, all of it) with Kafka Streams, exactly_once_v2, one stream thread, once per\n"
        + "pass (pass 1 in a cold JVM, later passes warm, each with a fresh application.id), and prints one JSON\n"
        + "line of figures per pass. --broker-pid adds the broker's CPU per event (from /proc/PID/stat);\n"
        + "--delete-source-topic deletes T after the last pass.");
    System.exit(status);
  }
}
