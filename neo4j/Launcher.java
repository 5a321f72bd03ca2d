// Starts a real Neo4j 5.26 (community) through the test harness, without Docker, for tests and CI.
// Run: NEO4J_PASSWORD=... java -Xmx1g -cp 'neo4j/lib/*' neo4j/Launcher.java --port 7687 --dir DIR
//        [--plugins neo4j/plugins] [--pagecache-mb 256] [--http-port 0] [--watch-pid PID] [--import DIR]
// Bolt listens on 127.0.0.1:PORT with auth (user neo4j, password from NEO4J_PASSWORD, never argv).
// Prints "NEO4J READY bolt://127.0.0.1:PORT" once it accepts queries, then blocks until killed.
// The store lives in a fresh folder under DIR and is deleted when the server stops. With --watch-pid the
// server also stops when that process ends (a test run that died without stopping it).
// LOAD CSV reads file:/// URLs only inside the import folder (--import, default DIR/import), never other
// files of the host; APOC's file import and export stay off (its defaults).

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.BoltConnectorInternalSettings;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.connectors.HttpsConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.graphdb.GraphDatabaseService;
import org.neo4j.harness.Neo4j;
import org.neo4j.harness.Neo4jBuilder;
import org.neo4j.harness.Neo4jBuilders;
import org.neo4j.kernel.internal.Version;

public final class Launcher {
    private static final String HOST = "127.0.0.1";
    private static final String USER = "neo4j";

    private Launcher() {}

    public static void main(String[] argv) throws Exception {
        Map<String, String> args = parse(argv);
        int port = Integer.parseInt(args.getOrDefault("port", "7687"));
        int httpPort = Integer.parseInt(args.getOrDefault("http-port", "-1"));
        long pageCacheMb = Long.parseLong(args.getOrDefault("pagecache-mb", "256"));
        Path dir = Path.of(require(args, "dir")).toAbsolutePath();
        Path importDir = Path.of(args.getOrDefault("import", dir.resolve("import").toString())).toAbsolutePath();
        String password = System.getenv("NEO4J_PASSWORD");
        if (password == null || password.length() < 8) {
            fail("set NEO4J_PASSWORD (at least 8 characters) in the environment; it is never read from argv");
        }
        Files.createDirectories(dir);
        Files.createDirectories(importDir);

        Neo4jBuilder builder = Neo4jBuilders.newInProcessBuilder(dir)
                .withConfig(BoltConnector.enabled, true)
                .withConfig(BoltConnector.listen_address, new SocketAddress(HOST, port))
                .withConfig(BoltConnector.advertised_address, new SocketAddress(HOST, port))
                .withConfig(BoltConnector.encryption_level, BoltConnector.EncryptionLevel.DISABLED)
                // Bolt waits 5 s twice for connections and threads when stopping; a test server need not.
                .withConfig(BoltConnectorInternalSettings.connection_shutdown_wait_time, Duration.ofSeconds(1))
                .withConfig(BoltConnectorInternalSettings.thread_pool_shutdown_wait_time, Duration.ofSeconds(1))
                .withConfig(HttpsConnector.enabled, false)
                .withConfig(GraphDatabaseSettings.auth_enabled, true)
                .withConfig(GraphDatabaseSettings.pagecache_memory, pageCacheMb * 1024 * 1024)
                .withConfig(GraphDatabaseSettings.udc_enabled, false)
                .withConfig(GraphDatabaseSettings.keep_logical_logs, "false")
                // file:/// URLs of LOAD CSV resolve inside the import folder and cannot leave it
                .withConfig(GraphDatabaseSettings.load_csv_file_url_root, importDir)
                .withConfig(GraphDatabaseSettings.allow_file_urls, true);
        if (httpPort >= 0) {
            // Neo4j Browser / HTTP API on a port of the caller's choice (0 = any free port).
            builder.withConfig(HttpConnector.enabled, true)
                    .withConfig(HttpConnector.listen_address, new SocketAddress(HOST, httpPort));
        } else {
            builder.withDisabledServer().withConfig(HttpConnector.enabled, false);
        }
        String plugins = args.get("plugins");
        if (plugins != null && Files.isDirectory(Path.of(plugins))) {
            builder.withConfig(GraphDatabaseSettings.plugin_dir, Path.of(plugins).toAbsolutePath())
                    .withConfig(GraphDatabaseSettings.procedure_unrestricted, List.of("apoc.*"));
        }

        long t0 = System.nanoTime();
        Neo4j neo4j = builder.build();
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("NEO4J STOPPING");
            neo4j.close();
            stopped.countDown();
        }, "neo4j-shutdown"));

        // The embedded API runs with full rights and no login: set the password there, as a parameter.
        GraphDatabaseService system = neo4j.databaseManagementService().database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME);
        system.executeTransactionally(
                "ALTER USER " + USER + " SET PASSWORD $password CHANGE NOT REQUIRED", Map.of("password", password));

        String http = httpPort >= 0 && neo4j.httpURI() != null ? " http=" + neo4j.httpURI() : "";
        System.out.printf("NEO4J started version=%s in %.1f s%s%n", Version.getNeo4jVersion(),
                (System.nanoTime() - t0) / 1e9, http);
        System.out.println("NEO4J READY bolt://" + HOST + ":" + port);
        System.out.flush();
        String watch = args.get("watch-pid");
        if (watch != null) {
            watchParent(Long.parseLong(watch));
        }
        stopped.await();
    }

    /** Exits (running the shutdown hook) once process {@code pid} is gone. */
    private static void watchParent(long pid) {
        Thread watcher = new Thread(() -> {
            while (ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false)) {
                try {
                    Thread.sleep(2000);
                } catch (InterruptedException e) {
                    return;
                }
            }
            System.out.println("NEO4J watched process " + pid + " ended");
            System.exit(0);
        }, "neo4j-watch-pid");
        watcher.setDaemon(true);
        watcher.start();
    }

    private static Map<String, String> parse(String[] argv) {
        Map<String, String> out = new HashMap<>();
        for (int i = 0; i < argv.length; i++) {
            if (!argv[i].startsWith("--") || i + 1 >= argv.length) {
                fail("usage: Launcher --port N --dir DIR [--plugins DIR] [--pagecache-mb N] [--http-port N] [--watch-pid N]"
                        + " [--import DIR];"
                        + " bad: " + argv[i]);
            }
            if (argv[i].equals("--password")) {
                fail("pass the password in the NEO4J_PASSWORD environment variable, not on the command line");
            }
            out.put(argv[i].substring(2), argv[++i]);
        }
        return out;
    }

    private static String require(Map<String, String> args, String name) {
        String value = args.get(name);
        if (value == null) {
            fail("missing --" + name);
        }
        return value;
    }

    private static void fail(String message) {
        System.err.println("NEO4J FAILED " + message);
        System.exit(2);
    }
}
