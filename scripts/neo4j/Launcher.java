// A real Neo4j Community server for tests and local use, started in-process with only the Bolt connector.
// Run as `java -cp '<jars>/*' Launcher.java [--port N] [--data DIR] [--pagecache-mb N] [--password PW]`
// (a password needs at least 8 characters; it switches authentication on for user neo4j)
// (single-file source launch, no build step). Prints the Bolt URI on one stdout line once Bolt accepts
// connections, and shuts Neo4j down cleanly when stdin closes (or on SIGTERM), so a parent process that
// dies never leaves a server behind.

import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.Map;
import java.util.stream.Stream;

import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.ConnectorPortRegister;
import org.neo4j.configuration.connectors.ConnectorType;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.connectors.HttpsConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.internal.helpers.HostnamePort;
import org.neo4j.kernel.internal.GraphDatabaseAPI;

public class Launcher {
    public static void main(String[] args) throws Exception {
        int port = 0;
        Path data = null;
        long pagecacheMb = 128;
        String password = null;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--port" -> port = Integer.parseInt(args[++i]);
                case "--data" -> data = Path.of(args[++i]);
                case "--pagecache-mb" -> pagecacheMb = Long.parseLong(args[++i]);
                case "--password" -> password = args[++i];
                default -> {
                    System.err.println("neo4j launcher: unknown argument " + args[i]);
                    System.exit(2);
                }
            }
        }
        boolean temporary = data == null;
        Path home = temporary ? Files.createTempDirectory("liubai-neo4j-") : data;
        // Listen and advertised addresses must agree for neo4j:// routing, so pick the port up front.
        int boltPort = port != 0 ? port : freePort();

        DatabaseManagementService dbms = new DatabaseManagementServiceBuilder(home)
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", boltPort))
                .setConfig(BoltConnector.advertised_address, new SocketAddress("127.0.0.1", boltPort))
                .setConfig(BoltConnector.encryption_level, BoltConnector.EncryptionLevel.DISABLED)
                .setConfig(HttpConnector.enabled, false)
                .setConfig(HttpsConnector.enabled, false)
                .setConfig(GraphDatabaseSettings.routing_enabled, false)
                .setConfig(GraphDatabaseSettings.pagecache_memory, pagecacheMb * 1024 * 1024)
                .setConfig(GraphDatabaseSettings.keep_logical_logs, "false")
                .setConfig(GraphDatabaseSettings.preallocate_logical_logs, false)
                .setConfig(GraphDatabaseSettings.auth_enabled, password != null)
                .build();
        Runnable stop = new Runnable() {
            private boolean done;

            public synchronized void run() {
                if (done) return;
                done = true;
                dbms.shutdown();
                if (temporary) deleteTree(home);
            }
        };
        Runtime.getRuntime().addShutdownHook(new Thread(stop));

        HostnamePort bound;
        try {
            if (password != null) {
                dbms.database("system").executeTransactionally(
                        "ALTER USER neo4j SET PASSWORD $pw CHANGE NOT REQUIRED", Map.of("pw", password));
            }
            GraphDatabaseAPI db = (GraphDatabaseAPI) dbms.database(GraphDatabaseSettings.DEFAULT_DATABASE_NAME);
            bound = db.getDependencyResolver().resolveDependency(ConnectorPortRegister.class)
                    .getLocalAddress(ConnectorType.BOLT);
        } catch (RuntimeException e) {
            System.err.println("neo4j launcher: start-up failed: " + e.getMessage());
            stop.run();
            System.exit(1);
            return;
        }
        String auth = password != null ? "neo4j:" + password + "@" : "";
        System.out.println("bolt://" + auth + "127.0.0.1:" + bound.getPort());
        System.out.flush();

        InputStream in = System.in;
        byte[] buf = new byte[256];
        while (in.read(buf) >= 0) {
            // Anything written to stdin is ignored; only end-of-file matters.
        }
        stop.run();
        System.exit(0);
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    private static void deleteTree(Path root) {
        try (Stream<Path> walk = Files.walk(root)) {
            walk.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException e) {
            System.err.println("neo4j launcher: could not remove " + root + ": " + e);
        }
    }
}
